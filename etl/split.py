"""Split: a deterministic train/validation/test assignment from a salted hash of a key.

The same key always lands in the same split, whatever else is in the data or how it is
partitioned, so re-runs and appended data never move a document across splits.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_BUCKETS = 1_000_000


def split_of(key: Column, fractions: tuple[float, float, float], salt: str) -> Column:
    """``train``/``validation``/``test`` for each key, with the given fractions."""
    bucket = F.pmod(F.xxhash64(F.lit(salt), key), F.lit(_BUCKETS))
    train_end = round(fractions[0] * _BUCKETS)
    validation_end = train_end + round(fractions[1] * _BUCKETS)
    return F.when(bucket < train_end, "train").when(bucket < validation_end, "validation").otherwise("test")


def assign_split(df: DataFrame, *, fractions: tuple[float, float, float], salt: str, key: str = "id") -> DataFrame:
    """Add a ``split`` column computed from ``key``."""
    return df.withColumn("split", split_of(F.col(key), fractions, salt))
