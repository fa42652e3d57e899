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
    """Share of the items that repeat an earlier one (0 for an empty array). ``items`` is read three
    times: pass a column, not an expression, or it is computed three times (Spark does not share a
    subexpression between a ``when``'s condition and its value)."""
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


ALPHA_WORD = r"[^ \n]*\p{L}[^ \n]*"
"""A word holding a letter, whole: ``regexp_count`` of it is the number of such words."""
SYMBOL = r"#|\.\.\.|\u2026"


def _metric_columns(text: Column, todo: Column) -> list[dict[str, Column]]:
    """What the rules compare, as layers of columns (``_q_<metric>``), each computed once per row
    and only where ``todo`` holds: the words and lines, then the counts and shares. Spark shares no
    subexpression between the conditions of a ``when`` chain, so the rules read these columns
    instead of expressions (the non-space characters were counted three times, the 3-grams built
    three times)."""
    words = F.col("_q_word_list")
    return [
        {"_q_word_list": F.when(todo, words_of(text)), "_q_lines": F.when(todo, F.split(text, "\n"))},
        {"_q_trigrams": _word_trigrams(words)},
        {
            "_q_words": F.size(words),
            "_q_chars": F.when(todo, F.length(F.regexp_replace(text, r"\s", ""))),
            "_q_alpha_words": F.when(todo, F.regexp_count(text, F.lit(ALPHA_WORD))),
            "_q_symbols": F.when(todo, F.regexp_count(text, F.lit(SYMBOL))),
            "_q_digits": F.when(todo, F.regexp_count(text, F.lit(r"\d"))),
            "_q_dup_lines": _repeated_share(F.col("_q_lines")),
            "_q_dup_ngrams": F.coalesce(_repeated_share(F.col("_q_trigrams")), F.lit(0.0)),
        },
    ]


def quality_reason(rules: EtlConfig, measures: list[str], lang: Column | None = None) -> Column:
    """The first failed rule's reason, null when a row passes them all, over the ``measures``
    columns (``_q_<metric>``, the last layer of ``_metric_columns``); ``lang``: the row's language,
    for the thresholds ``etl.quality_by_lang`` sets per language."""
    t = _thresholds(rules, lang)
    m = {name.removeprefix("_q_"): F.col(name) for name in measures}
    n_words = m["words"]
    checks = [
        ("min_words", reason("too_few_words"), n_words < t["min_words"]),
        ("max_words", reason("too_many_words"), n_words > t["max_words"]),
        ("min_mean_word_len", reason("mean_word_length"), m["chars"] / n_words < t["min_mean_word_len"]),
        ("max_mean_word_len", reason("mean_word_length"), m["chars"] / n_words > t["max_mean_word_len"]),
        ("min_alpha_words", reason("low_alpha_ratio"), m["alpha_words"] / n_words < t["min_alpha_words"]),
        ("max_symbol_ratio", reason("high_symbol_ratio"), m["symbols"] / n_words > t["max_symbol_ratio"]),
        ("max_digit_ratio", reason("high_digit_ratio"), m["digits"] / m["chars"] > t["max_digit_ratio"]),
        ("max_dup_line_frac", reason("repeated_lines"), m["dup_lines"] > t["max_dup_line_frac"]),
        ("max_dup_ngram_frac", reason("repeated_ngrams"), m["dup_ngrams"] > t["max_dup_ngram_frac"]),
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
    """Mark rows of ``df`` (cleaned, non-empty ``text``) that fail a rule; earlier reasons stay
    (their rows are not measured). Where ``df`` has a ``lang`` column, ``etl.quality_by_lang``
    thresholds apply per language. The measures no enabled rule reads are pruned by Spark."""
    lang = F.col("lang") if "lang" in df.columns else None
    layers = _metric_columns(F.col("text"), F.col("reject_reason").isNull())
    measured = df
    for layer in layers:
        measured = measured.withColumns(layer)
    failed = quality_reason(rules, list(layers[-1]), lang)
    added = [name for layer in layers for name in layer]
    return measured.withColumn("reject_reason", F.coalesce(F.col("reject_reason"), failed)).drop(*added)
