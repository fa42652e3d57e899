"""Settings of the ETL stages, one frozen dataclass filled from YAML and ``--set`` flags."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

QUALITY_FIELDS = (
    "min_words",
    "max_words",
    "min_mean_word_len",
    "max_mean_word_len",
    "min_alpha_words",
    "max_symbol_ratio",
    "max_digit_ratio",
    "max_dup_line_frac",
    "max_dup_ngram_frac",
)
"""The thresholds of ``etl.quality``'s rules (0 switches one off)."""

SPLITS = ("train", "validation", "test")
"""The splits, in the order of ``etl.split_fractions``."""


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, or nothing when none is near."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(key: str, value: object, choices: Iterable[str]) -> None:
    """A ``ValueError`` naming the key, the value and the nearest choice unless ``value`` is one."""
    choices = tuple(str(c) for c in choices)
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}{did_you_mean(value, choices)}")


class Task(StrEnum):
    """What gold is made for and the model learns: a member equals its string (``--set etl.task=...``)."""

    CLASSIFICATION = "classification"
    """Rows need a label; gold holds one label id per row; a BERT-style classifier."""
    CAUSAL_LM = "causal-lm"
    """Labels are ignored; gold holds packed blocks of tokens; a GPT-2-style decoder."""


@dataclass(frozen=True)
class EtlConfig:
    text_column: str = "text"
    """Name of the input field that holds the document text."""
    label_column: str = "label"
    """Name of the input field that holds the label (integers and strings are kept as strings)."""
    id_column: str = "id"
    """Name of the input field that holds the document id; a record without one gets its text's SHA-256."""
    task: str = Task.CLASSIFICATION.value
    """``classification`` (rows need a label) or ``causal-lm`` (labels ignored)."""
    text_format: str = "auto"
    """What the text field of JSON Lines, CSV, Parquet and text files holds: ``plain`` (``auto``),
    ``html`` (a page: its main content is kept) or ``email`` (an RFC 822 message: its body is
    kept, its subject, sender domain and date go to ``meta``). Web archives and ``.html`` files
    are always pages, ``.eml`` and ``.mbox`` files always e-mail."""
    languages: tuple[str, ...] = ()
    """ISO 639 codes of the languages to keep (``[en, es]``); others are quarantined as
    ``language``. Empty: every language."""
    min_lang_confidence: float = 0.0
    """Rows whose language is identified with less confidence (0-1) are quarantined as ``language``."""
    quality_by_lang: dict[str, dict[str, float]] = field(default_factory=dict)
    """Quality thresholds for one language, overriding the ones below for its rows
    (``{zh: {max_mean_word_len: 0}}``)."""
    max_doc_chars: int = 1_000_000
    """Documents longer than this (after cleaning) are quarantined as ``too_long``."""
    raw_keep_chars: int = 2_000
    """How much of a rejected raw record the quarantine table keeps."""
    url_mode: str = "keep"
    """URLs in text: ``keep``, ``mask`` (``<URL>``) or ``remove``."""
    min_words: int = 3
    """Quality rule (0 = off): fewer words than this -> ``too_few_words``."""
    max_words: int = 100_000
    """Quality rule (0 = off): more words -> ``too_many_words``."""
    min_mean_word_len: float = 2.0
    """Quality rule (0 = off): shorter mean word length -> ``mean_word_length``."""
    max_mean_word_len: float = 20.0
    """Quality rule (0 = off): longer mean word length -> ``mean_word_length`` (0 for languages
    written without spaces)."""
    min_alpha_words: float = 0.5
    """Quality rule (0 = off): a smaller share of words holding a letter -> ``low_alpha_ratio``."""
    max_symbol_ratio: float = 0.1
    """Quality rule (0 = off): more ``#`` and ellipses per word -> ``high_symbol_ratio``."""
    max_digit_ratio: float = 0.5
    """Quality rule (0 = off): more digits per non-space character -> ``high_digit_ratio``."""
    max_dup_line_frac: float = 0.3
    """Quality rule (0 = off): a larger share of lines repeating an earlier one -> ``repeated_lines``."""
    max_dup_ngram_frac: float = 0.3
    """Quality rule (0 = off): a larger share of repeated word 3-grams -> ``repeated_ngrams``."""
    pseudonymise_pii: bool = False
    """Replace PII by a keyed hash (HMAC-SHA256, key from ``TOKENLAKE_PII_SECRET``) instead of
    a bare placeholder: the same value gets the same pseudonym everywhere."""
    near_dup_threshold: float = 0.8
    """Word-shingle Jaccard at which documents are near-duplicates (one per cluster is kept); 0 = off."""
    shingle_words: int = 1
    """Words per shingle of the near-duplicate similarity (1: the document's word set)."""
    minhash_perm: int = 140
    """MinHash permutations per document."""
    minhash_bands: int = 20
    """LSH bands (``minhash_perm`` must be a multiple): more bands find pairs of lower similarity."""
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, validation and test fractions, assigned from a hash of the id."""
    split_salt: str = "tokenlake"
    """Salt of the split hash: change it to draw a different (still deterministic) split."""
    tokenizer: str = ""
    """Empty: train one on the train split; ``minilm`` or a directory: use that tokenizer."""
    tokenizer_kind: str = "wordpiece"
    """``wordpiece`` or ``bpe`` (byte-level) when a tokenizer is trained."""
    vocab_size: int = 8_000
    """Vocabulary size of a trained tokenizer."""
    tokenizer_sample_docs: int = 50_000
    """How many train-split documents (chosen by hash, deterministically) train the tokenizer."""
    max_len: int = 128
    """Token sequences are truncated to this length (special tokens included)."""
    target_file_tokens: int = 16_000_000
    """Tokens per gold file; the gold table gets at least ``min_files`` files, balanced by tokens."""
    min_files: int = 2
    """Lower bound on gold files, so that every training rank gets a shard."""
    row_group_mb: int = 4
    """Parquet row groups of gold close this size (in memory, before compression): the unit a
    training rank reads and shards by, so several per file; a rank's first batch waits for one."""
    rebuild_gold: bool = False
    """Rebuild gold from the whole silver table even where it could grow by this run's new rows
    (``--rebuild-gold``); with a trained tokenizer this trains it again."""
    expectations_dir: str = ""
    """A directory of your own suites (``gold.json``, ...); empty means the shipped ones."""

    def __post_init__(self) -> None:
        one_of("etl.task", self.task, Task)
        columns = (self.text_column, self.label_column, self.id_column)
        if not all(columns) or len(set(columns)) < 3 or any("'" in c and '"' in c for c in columns):
            raise ValueError(
                f"etl.text_column, etl.label_column and etl.id_column must be three different names (none "
                f"holding both kinds of quote), got {columns}"
            )
        one_of("etl.tokenizer_kind", self.tokenizer_kind, ("wordpiece", "bpe"))
        one_of("etl.text_format", self.text_format, ("auto", "plain", "html", "email"))
        if not 0 <= self.min_lang_confidence <= 1:
            raise ValueError(f"etl.min_lang_confidence must be in [0, 1], got {self.min_lang_confidence}")
        for code in self.languages:
            if not (isinstance(code, str) and re.fullmatch(r"[a-z]{2,3}", code)):
                raise ValueError(f"etl.languages holds ISO 639 codes (en, es, ceb: lower-case letters), got {code!r}")
        if not isinstance(self.quality_by_lang, dict):
            raise ValueError(f"etl.quality_by_lang maps a language to thresholds, got {self.quality_by_lang!r}")
        for code, rules in self.quality_by_lang.items():
            unknown = set(rules) - set(QUALITY_FIELDS) if isinstance(rules, dict) else {rules}
            if unknown:
                raise ValueError(
                    f"etl.quality_by_lang.{code}: {sorted(map(str, unknown))} are not quality thresholds; "
                    f"these are: {', '.join(QUALITY_FIELDS)}"
                )
            if any(not isinstance(v, int | float) or isinstance(v, bool) or v < 0 for v in rules.values()):
                raise ValueError(f"etl.quality_by_lang.{code}: thresholds are numbers >= 0, got {rules}")
        one_of("etl.url_mode", self.url_mode, ("keep", "mask", "remove"))
        if len(self.split_fractions) != 3 or any(f < 0 for f in self.split_fractions):
            raise ValueError(f"etl.split_fractions must be three non-negative numbers: {self.split_fractions}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"etl.split_fractions must add up to 1, got {sum(self.split_fractions)}")
        if not 8 <= self.max_len <= 8192:
            raise ValueError(f"etl.max_len must be in [8, 8192], got {self.max_len}")
        if not 0 <= self.near_dup_threshold <= 1:
            raise ValueError(f"etl.near_dup_threshold must be in [0, 1], got {self.near_dup_threshold}")
        if self.minhash_perm % max(self.minhash_bands, 1):
            raise ValueError(
                f"etl.minhash_perm ({self.minhash_perm}) must be a multiple of minhash_bands ({self.minhash_bands})"
            )
        for name in QUALITY_FIELDS:
            if getattr(self, name) < 0:
                raise ValueError(f"etl.{name} must be >= 0 (0 switches the rule off), got {getattr(self, name)}")
        for name in (
            "max_doc_chars",
            "raw_keep_chars",
            "vocab_size",
            "tokenizer_sample_docs",
            "target_file_tokens",
            "shingle_words",
            "minhash_perm",
            "minhash_bands",
            "min_files",
            "row_group_mb",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"etl.{name} must be >= 1, got {getattr(self, name)}")
