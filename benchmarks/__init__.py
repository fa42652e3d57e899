"""Benchmarks: ``make bench`` (``python -m benchmarks.run``) and ``benchmarks/gpu.py``."""
