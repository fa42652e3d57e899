"""PII masking: e-mail addresses and payment card numbers become typed placeholders.

E-mails are a built-in ``regexp_replace``. Masking card numbers needs a Luhn check per match, so
rows that contain a candidate digit run go through an Arrow-batched pandas UDF; the rest never
leave the JVM. Finding a card left in text (validation) uses built-in functions only.
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


def first_card(text: Column) -> Column:
    """The first Luhn-valid card number in ``text``, else null: built-in higher-order functions
    only, so validation scans text without a round trip through Python."""

    def digit_sum(digits: Column) -> Column:  # Luhn: double every second digit from the right
        reversed_digits = F.reverse(F.split(digits, ""))
        doubled = F.transform(
            reversed_digits,
            lambda ch, i: F.when(i % 2 == 0, ch.cast("int")).otherwise(
                F.when(ch.cast("int") > 4, ch.cast("int") * 2 - 9).otherwise(ch.cast("int") * 2)
            ),
        )
        return F.aggregate(doubled, F.lit(0), lambda acc, d: acc + d)

    def is_card(candidate: Column) -> Column:
        digits = F.regexp_replace(candidate, r"\D", "")
        return F.length(digits).between(13, 19) & (digit_sum(digits) % 10 == 0)

    cards = F.filter(F.regexp_extract_all(text, F.lit(CARD_CANDIDATE), F.lit(0)), is_card)
    return F.when(F.size(cards) > 0, cards[0])


def mask_emails(text: Column) -> Column:
    # the pattern backtracks at every word; a plain substring test skips the texts without "@"
    return F.when(text.contains("@"), F.regexp_replace(text, EMAIL_PATTERN, PLACEHOLDERS["email"])).otherwise(text)


def first_email(text: Column) -> Column:
    """The first e-mail address in ``text``, else null."""
    found = F.regexp_extract(text, EMAIL_PATTERN, 0)
    return F.when(text.contains("@") & (found != ""), found)


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
