"""Clean: markup out, entities decoded, Unicode NFC, control characters out, white space
collapsed line by line, boilerplate lines dropped, URLs optionally masked; unusable results marked.

In order: ``<script>``/``<style>`` blocks go; inline tags (``<b>``, ``<a>``, ...) are removed and
every other tag becomes a space; HTML entities are decoded and the text NFC-normalised (the one
step Spark lacks: an Arrow-batched pandas UDF); control characters become spaces; runs of
horizontal white space become one space, each line is trimmed, empty lines go; lines that are
boilerplate (cookie banners, "JavaScript required", lorem ipsum) go. Line breaks are kept, so
that the quality filters (``etl.quality``) can see repeated lines.
"""

from __future__ import annotations

import html

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tokenlake.etl.reasons import reason

EMPTY_AFTER_CLEAN = reason("empty_after_clean")
TOO_LONG = reason("too_long")
URL_MODES = ("keep", "mask", "remove")
URL_PLACEHOLDER = "<URL>"

_BLOCKS = r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>"
_INLINE_TAGS = r"(?i)</?(?:b|i|em|strong|span|a|u|small|font)\b[^>]*>"
PLACEHOLDER_TAGS = ("URL", "EMAIL", "PHONE", "CARD", "IPV4", "IPV6", "IBAN", "DNI")
"""What URL and PII masking write (``<EMAIL>``, or a pseudonym ``<EMAIL_0123456789ab>``): not markup,
so cleaning masked text again keeps them."""
_MASKS = rf"(?:{'|'.join(PLACEHOLDER_TAGS)})(?:_[0-9a-f]{{12}})?>"  # <EMAIL>, or a pseudonym <EMAIL_0123456789ab>
_TAGS = rf"</?(?!{_MASKS})[A-Za-z][^<>]*>|<!--.*?-->|<![A-Za-z][^<>]*>"
_URL = r"\b(?:https?://|www\.)[^\s<>\"]+"
BOILERPLATE_LINE = (
    r"(?im)^.*(?:we use cookies|accept (?:all )?cookies|cookie (?:policy|settings|preferences)"
    r"|(?:enable|requires?|disabled?|turn on) javascript|javascript (?:is |must be )?(?:required|disabled|enabled)"
    r"|lorem ipsum).*$"
)
BOILERPLATE_WORDS = r"(?i)cookie|javascript|lorem ipsum"
"""A word each boilerplate line holds: a scan for them is cheap where ``^.*(...)`` backtracks
through every line; only the texts that hold one are searched for whole lines."""


@F.pandas_udf(T.StringType())
def unescape_nfc(text: pd.Series) -> pd.Series:
    """HTML entities decoded (only where an ``&`` is), then Unicode NFC; null stays null."""
    decoded = text.map(lambda t: html.unescape(t) if isinstance(t, str) and "&" in t else t)
    return decoded.str.normalize("NFC")


def strip_markup(text: Column) -> Column:
    """Script/style blocks out, inline tags removed, other tags (block boundaries) to spaces."""
    without_blocks = F.regexp_replace(text, _BLOCKS, " ")
    return F.regexp_replace(F.regexp_replace(without_blocks, _INLINE_TAGS, ""), _TAGS, " ")


def strip_controls(text: Column) -> Column:
    """Control characters (C0/C1, DEL) become spaces, except line breaks (CR LF and CR become LF)."""
    return F.regexp_replace(F.regexp_replace(text, r"\r\n?", "\n"), r"[\p{Cc}&&[^\n]]", " ")


def collapse_whitespace(text: Column) -> Column:
    """Horizontal white space (Unicode separators included) to one space; each line trimmed;
    empty lines dropped; the text trimmed."""
    spaced = F.regexp_replace(text, r"[\s\p{Z}&&[^\n]]+", " ")
    return F.trim(F.regexp_replace(spaced, r" ?\n[ \n]*", "\n"), F.lit("\n "))


def drop_boilerplate_lines(text: Column) -> Column:
    found = text.rlike(BOILERPLATE_WORDS) & text.rlike(BOILERPLATE_LINE)  # `&` stops at the first false
    return F.when(found, collapse_whitespace(F.regexp_replace(text, BOILERPLATE_LINE, ""))).otherwise(text)


def handle_urls(text: Column, mode: str) -> Column:
    if mode == "keep":
        return text
    return F.regexp_replace(text, _URL, URL_PLACEHOLDER if mode == "mask" else "")


def clean_text(text: Column, *, url_mode: str = "keep") -> Column:
    """Every cleaning step above, as one column expression."""
    decoded = unescape_nfc(F.when(text.contains("<"), strip_markup(text)).otherwise(text))
    return drop_boilerplate_lines(collapse_whitespace(strip_controls(handle_urls(decoded, url_mode))))


def clean_docs(df: DataFrame, *, max_doc_chars: int, url_mode: str = "keep") -> DataFrame:
    """Clean ``text`` and mark rows that are empty or longer than ``max_doc_chars`` afterwards."""
    if url_mode not in URL_MODES:
        raise ValueError(f"url_mode must be one of {URL_MODES}, got {url_mode!r}")
    cleaned = df.withColumn("text", clean_text(F.col("text"), url_mode=url_mode))
    reason = F.when(F.col("text") == "", F.lit(EMPTY_AFTER_CLEAN)).when(
        F.length("text") > max_doc_chars, F.lit(TOO_LONG)
    )
    return (
        cleaned.withColumn("reject_reason", F.coalesce(F.col("reject_reason"), reason))
        if "reject_reason" in df.columns
        else cleaned.withColumn("reject_reason", reason)
    )
