"""Learning to optimize for CT reconstruction: geometry, phantoms, the ray transform, the
reconstruction methods (FBP, TV-min, U-Net, F-FPN, implicit L2O) and their scoring.

The problem, the operator and what each method is proven against are in ``docs/ct.md``.
"""
