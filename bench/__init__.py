"""Benchmarks for the gateway; run them from the repository root with ``python -m bench.<name>``."""
