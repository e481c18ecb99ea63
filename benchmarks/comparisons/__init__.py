"""l2obench against reference implementations (PyEPO, Gurobi, fpo-dys, PyTorch vs JAX), each a
structured comparison run by ``python -m benchmarks.comparisons.ratios``."""
