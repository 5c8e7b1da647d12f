"""Benchmarks: run as ``python -m bench.<name>``; figures are medians of several runs."""
