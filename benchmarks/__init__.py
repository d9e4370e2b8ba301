"""Benchmarks: `python benchmarks/bench.py`, and benchmarks/device_check.sh for a GPU."""
