"""Benchmarks: ``make bench`` (``python -m tokenlake.benchmarks.run``) and ``benchmarks/gpu.py``."""
