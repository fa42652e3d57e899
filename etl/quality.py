"""Quality filters in the spirit of Gopher's and C4's rules, on cleaned text, built-in Spark only.

Each rule marks a row with its own ``reject_reason`` (the first rule that fails wins) and is
switched off by setting its threshold (an ``EtlConfig`` field) to 0. Words are runs of non-space characters.

    too_few_words / too_many_words   word count outside [min_words, max_words]
    mean_word_length                 mean word length outside [min_mean_word_len, max_mean_word_len]
    low_alpha_ratio                  share of words holding a letter below min_alpha_words
    high_symbol_ratio                ``#`` and ellipses per word above max_symbol_ratio
    high_digit_ratio                 digits per non-space character above max_digit_ratio
    repeated_lines                   share of lines that repeat an earlier line above max_dup_line_frac
    repeated_ngrams                  share of word 3-grams that repeat an earlier one above max_dup_ngram_frac
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tokenlake.etl.config import QUALITY_FIELDS, EtlConfig
from tokenlake.etl.reasons import reason


def _repeated_share(items: Column) -> Column:
    """Share of the items that repeat an earlier one (0 for an empty array)."""
    n = F.size(items)
    return F.when(n > 0, 1 - F.size(F.array_distinct(items)) / n).otherwise(F.lit(0.0))


def _word_trigrams(words: Column) -> Column:
    """The word 3-grams as 64-bit hashes (xxhash64 of the first two words' hash and the third
    word), null under three words: ``array_distinct`` takes the fast path for longs, twice as fast
    as over "w1 w2 w3" strings (structs were 10x slower: compared pairwise, quadratic in words). Two
    different 3-grams of one document share a hash with a probability near n²/2⁶⁴ (1e-11 for 20,000
    words). The lambdas see only their own arguments: an outer expression referenced inside one is
    evaluated again for every element."""
    n = F.size(words) - 2
    first, second, third = F.slice(words, 1, n), F.slice(words, 2, n), F.slice(words, 3, n)
    pairs = F.zip_with(first, second, lambda a, b: F.xxhash64(a, b))
    return F.when(n >= 1, F.zip_with(pairs, third, lambda ab, c: F.xxhash64(ab, c)))


def words_of(text: Column) -> Column:
    """The words the rules count: ``text`` split at spaces and line breaks."""
    return F.split(text, " |\n")


def _thresholds(rules: EtlConfig, lang: Column | None) -> dict[str, float | Column]:
    """Each rule's threshold: ``rules``' own, or a column choosing the row's language's override
    (``etl.quality_by_lang``) where one is set."""
    out: dict[str, float | Column] = {}
    for name in QUALITY_FIELDS:
        value: float | Column = getattr(rules, name)
        overrides = [(code, by[name]) for code, by in sorted(rules.quality_by_lang.items()) if name in by]
        if overrides and lang is not None:
            column = F.lit(value)
            for code, override in overrides:
                column = F.when(lang == code, F.lit(override)).otherwise(column)
            value = column
        out[name] = value
    return out


def quality_reason(text: Column, rules: EtlConfig, words: Column | None = None, lang: Column | None = None) -> Column:
    """The first failed rule's reason for ``text``, null when it passes them all. ``words``: the
    text's words (``words_of``) where a column already holds them; ``lang``: the row's language,
    for the thresholds ``etl.quality_by_lang`` sets per language."""
    words = words_of(text) if words is None else words
    t = _thresholds(rules, lang)
    n_words = F.size(words)
    chars = F.length(F.regexp_replace(text, r"\s", ""))
    checks = [
        ("min_words", reason("too_few_words"), n_words < t["min_words"]),
        ("max_words", reason("too_many_words"), n_words > t["max_words"]),
        ("min_mean_word_len", reason("mean_word_length"), chars / n_words < t["min_mean_word_len"]),
        ("max_mean_word_len", reason("mean_word_length"), chars / n_words > t["max_mean_word_len"]),
        (
            "min_alpha_words",
            reason("low_alpha_ratio"),
            F.size(F.filter(words, lambda w: w.rlike(r"\p{L}"))) / n_words < t["min_alpha_words"],
        ),
        (
            "max_symbol_ratio",
            reason("high_symbol_ratio"),
            (F.size(F.split(text, r"#|\.\.\.|\u2026")) - 1) / n_words > t["max_symbol_ratio"],
        ),
        (
            "max_digit_ratio",
            reason("high_digit_ratio"),
            F.length(F.regexp_replace(text, r"\D", "")) / chars > t["max_digit_ratio"],
        ),
        (
            "max_dup_line_frac",
            reason("repeated_lines"),
            _repeated_share(F.split(text, "\n")) > t["max_dup_line_frac"],
        ),
        (
            "max_dup_ngram_frac",
            reason("repeated_ngrams"),
            F.coalesce(_repeated_share(_word_trigrams(words)), F.lit(0.0)) > t["max_dup_ngram_frac"],
        ),
    ]
    first = None
    for name, rule, failed in checks:
        threshold = t[name]
        if isinstance(threshold, Column):  # per language: 0 switches the rule off for that language
            failed = (threshold > 0) & failed
        elif not threshold:
            continue
        first = F.when(failed, F.lit(rule)) if first is None else first.when(failed, F.lit(rule))
    return first if first is not None else F.lit(None).cast("string")


def filter_quality(df: DataFrame, *, rules: EtlConfig) -> DataFrame:
    """Mark rows of ``df`` (cleaned, non-empty ``text``) that fail a rule; earlier reasons stay.
    Where ``df`` has a ``lang`` column, ``etl.quality_by_lang`` thresholds apply per language."""
    words = "_words"  # split once: the rules read the words several times
    lang = F.col("lang") if "lang" in df.columns else None
    failed = quality_reason(F.col("text"), rules, F.col(words), lang)
    return (
        df.withColumn(words, words_of(F.col("text")))
        .withColumn("reject_reason", F.coalesce(F.col("reject_reason"), failed))
        .drop(words)
    )
