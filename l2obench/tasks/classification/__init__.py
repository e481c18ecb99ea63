"""Image and signal classification by implicit networks (Wu Fung et al., "JFB: Jacobian-Free
Backpropagation for Implicit Networks", AAAI 2022).

One module per concept: :mod:`.splits` (labelled splits, seeded hold-outs), :mod:`.formats`
(readers of MNIST's, SVHN's and CIFAR-10's distribution files), :mod:`.datasets` (the named data
sets, generated or read), :mod:`.contractive` (the latent map, contractive by construction),
:mod:`.lipschitz` (measurements of a map's Lipschitz constant), :mod:`.network` (feature map,
fixed-point layer, classifier), :mod:`.modes` (the backward modes the methods train with),
:mod:`.scoring` (accuracy and cross-entropy per instance) and :mod:`.fit` (training with model
selection on validation accuracy). See docs/classification.md.
"""
