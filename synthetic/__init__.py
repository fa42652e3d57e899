"""Synthetic corpora with their ground truth, and the scores that rate the ETL against it.

For ``tokenlake generate`` (the sample ``make run`` uses), the tests and the benchmarks: nothing
in the production path (``etl``, ``training``, the pipeline's jobs) imports it.
"""
