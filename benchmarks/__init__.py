"""asv benchmarks of l2obench's oracles, layers and methods (see asv.conf.json)."""
