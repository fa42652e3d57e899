"""Exact de-duplication on the SHA-256 of the cleaned text: one row per content is kept, the
one with the smallest id, whatever the partitioning."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window


def with_content_hash(df: DataFrame) -> DataFrame:
    return df.withColumn("content_sha256", F.sha2("text", 256))


def mark_exact_duplicates(df: DataFrame) -> DataFrame:
    """Add ``is_duplicate``: true for every row after the first (by id) of each ``content_sha256``."""
    rank = F.row_number().over(Window.partitionBy("content_sha256").orderBy("id"))
    return df.withColumn("is_duplicate", rank > 1)
