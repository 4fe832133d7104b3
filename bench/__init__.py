"""Benchmarks: each `bench/bench_<stage>.py` prints ratios measured side by side in one run."""
