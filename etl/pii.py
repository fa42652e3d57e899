"""PII masking: e-mail addresses and payment card numbers become typed placeholders.

E-mails are a built-in ``regexp_replace``. Card numbers need a Luhn check, so rows that contain
a candidate digit run go through an Arrow-batched pandas UDF; the rest never leave the JVM.
"""

from __future__ import annotations

import re

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

EMAIL_PATTERN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
CARD_CANDIDATE = r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"  # Java and Python regex alike
PLACEHOLDERS = {"email": "<EMAIL>", "card": "<CARD>"}
_CARD_RE = re.compile(CARD_CANDIDATE)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask_cards_in(text: str) -> str:
    return _CARD_RE.sub(lambda m: PLACEHOLDERS["card"] if _is_card(m.group()) else m.group(), text)


def _is_card(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


@F.pandas_udf(T.StringType())
def mask_cards(text: pd.Series) -> pd.Series:
    return text.map(lambda t: None if t is None else mask_cards_in(t))


def first_card_in(text: str) -> str | None:
    return next((m.group() for m in _CARD_RE.finditer(text) if _is_card(m.group())), None)


@F.pandas_udf(T.StringType())
def find_card(text: pd.Series) -> pd.Series:
    """The first Luhn-valid card number in each text, else null (validation uses it)."""
    return text.map(lambda t: None if t is None else first_card_in(t))


def mask_emails(text: Column) -> Column:
    return F.regexp_replace(text, EMAIL_PATTERN, PLACEHOLDERS["email"])


def mask_pii(df: DataFrame) -> DataFrame:
    """Mask e-mails and Luhn-valid card numbers in ``text``."""
    text = mask_emails(F.col("text"))
    return df.withColumn("text", text).withColumn(
        "text", F.when(F.col("text").rlike(CARD_CANDIDATE), mask_cards("text")).otherwise(F.col("text"))
    )


def pii_counts(df: DataFrame) -> dict[str, int]:
    """Placeholders per type in ``text`` (one aggregation pass)."""
    aggs = [F.sum(F.size(F.split("text", re.escape(p))) - 1).alias(name) for name, p in PLACEHOLDERS.items()]
    row = df.agg(*aggs).first()
    return {name: int(row[name] or 0) for name in PLACEHOLDERS}
