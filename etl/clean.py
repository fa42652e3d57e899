"""Clean: Unicode NFC, control characters out, white space collapsed; unusable results marked.

Column logic is built-in Spark except NFC, which Spark lacks: an Arrow-batched pandas UDF.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

EMPTY_AFTER_CLEAN = "empty_after_clean"
TOO_LONG = "too_long"
CLEAN_REASONS = (EMPTY_AFTER_CLEAN, TOO_LONG)


@F.pandas_udf(T.StringType())
def nfc(text: pd.Series) -> pd.Series:
    """Unicode NFC normalisation (composed characters), null stays null."""
    return text.str.normalize("NFC")


def strip_controls(text: Column) -> Column:
    """Control characters (C0/C1, DEL) become spaces; tabs and newlines are white space anyway."""
    return F.regexp_replace(text, r"\p{Cc}", " ")


def collapse_whitespace(text: Column) -> Column:
    """Runs of white space (Unicode separators included) become one space; ends are trimmed."""
    return F.trim(F.regexp_replace(text, r"[\s\p{Z}]+", " "))


def clean_docs(df: DataFrame, *, max_doc_chars: int) -> DataFrame:
    """Clean ``text`` and mark rows that are empty or longer than ``max_doc_chars`` afterwards."""
    cleaned = df.withColumn("text", collapse_whitespace(strip_controls(nfc("text"))))
    reason = F.when(F.col("text") == "", F.lit(EMPTY_AFTER_CLEAN)).when(
        F.length("text") > max_doc_chars, F.lit(TOO_LONG)
    )
    return (
        cleaned.withColumn("reject_reason", F.coalesce(F.col("reject_reason"), reason))
        if "reject_reason" in df.columns
        else cleaned.withColumn("reject_reason", reason)
    )
