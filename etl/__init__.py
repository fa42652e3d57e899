"""Spark ETL for tokenlake: ingest, clean, split and tokenize text into Delta tables.

Library code only: nothing here creates a SparkSession or parses arguments (see ``jobs/``).
"""
