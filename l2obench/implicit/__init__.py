"""Fixed-point machinery shared by every implicit model, knowing nothing of the model's domain.

``fixed_point`` holds the batched forward solvers (Picard, Anderson) as values, ``backward`` the
ways a gradient passes through a fixed point (JFB, unrolled, implicit) as values, and
``linear_solvers`` the adjoint solvers the implicit mode uses. A model hands them an operator
``fn(z, *args)``: the DYS layer of an LP, an image reconstruction step, a classifier's latent map.
"""
