"""asv benchmarks of l2obench's oracles, layers and methods (asv.conf.json's benchmark_dir)."""
