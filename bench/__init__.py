"""Benchmarks for findling (not part of the test suite); run ``python -m bench.run``."""
