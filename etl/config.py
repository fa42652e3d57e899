"""Settings of the ETL stages, one frozen dataclass filled from YAML and ``--set`` flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EtlConfig:
    text_column: str = "text"
    """Name of the input field that holds the document text."""
    task: str = "classification"
    """``classification`` (rows need a label) or ``causal-lm`` (labels ignored)."""
    max_doc_chars: int = 1_000_000
    """Documents longer than this (after cleaning) are quarantined as ``too_long``."""
    raw_keep_chars: int = 2_000
    """How much of a rejected raw record the quarantine table keeps."""
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
    target_file_rows: int = 50_000
    """Rows per gold file; the gold table gets at least ``min_files`` files."""
    min_files: int = 2
    """Lower bound on gold files, so that every training rank gets a shard."""
    expectations_dir: str = ""
    """A directory of your own suites (``gold.json``, ...); empty means the shipped ones."""

    def __post_init__(self) -> None:
        if self.task not in ("classification", "causal-lm"):
            raise ValueError(f"task must be classification or causal-lm, got {self.task!r}")
        if len(self.split_fractions) != 3 or any(f < 0 for f in self.split_fractions):
            raise ValueError(f"split_fractions must be three non-negative numbers: {self.split_fractions}")
        if abs(sum(self.split_fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must add up to 1, got {sum(self.split_fractions)}")
        if self.tokenizer_kind not in ("wordpiece", "bpe"):
            raise ValueError(f"tokenizer_kind must be wordpiece or bpe, got {self.tokenizer_kind!r}")
        if not 8 <= self.max_len <= 8192:
            raise ValueError(f"max_len must be in [8, 8192], got {self.max_len}")
        for name in (
            "max_doc_chars",
            "raw_keep_chars",
            "vocab_size",
            "tokenizer_sample_docs",
            "target_file_rows",
            "min_files",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
