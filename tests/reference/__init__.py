"""Independent reference implementations the tests (and the comparisons of ``benchmarks/``)
check l2obench against."""
