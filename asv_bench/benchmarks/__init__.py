"""asv benchmarks of newtoncnn (see asv_bench/asv.conf.json)."""
