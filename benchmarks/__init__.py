"""l2obench's measurements: asv timings (``asv/``), comparisons against reference
implementations (``comparisons/``) and studies behind the defaults (``studies/``); their
results and write-ups are in ``results/``."""
