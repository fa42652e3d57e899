"""Gold: the tokenized table training reads, and what its commits record.

A run either **appends** to gold (only the silver rows added since the gold version it extends are
tokenized and written as new balanced files) or **rebuilds** it from the whole silver table. It
appends when a gold table exists whose last commit was made with the same tokenizer (the
fingerprint decides: a trained tokenizer is kept in ``WORK/tokenizer`` and reused, not trained
again), ``max_len``, task and label set; anything else, or ``rebuild`` asked for, rebuilds.
``GoldPlan.reason`` says why.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl.config import EtlConfig
from etl.tokenize import TOKENIZER_FILE, copy_tokenizer, fingerprint, pretrained_dir, save_tokenizer, train_tokenizer

LABELS_FILE = "labels.json"
APPEND, REBUILD = "append", "rebuild"


@dataclass(frozen=True)
class GoldCommit:
    """The ``userMetadata`` of a gold commit: how its rows were made, and the whole table it
    leaves (``rows``, ``digest``: ``etl.lake.table_digest`` of that version)."""

    tokenizer_fingerprint: str
    tokenizer_source: str
    vocab_size: int
    max_len: int
    task: str
    labels: list[str]
    split_fractions: list[float]
    silver_version: int
    rows: int
    digest: str
    mode: str
    validation: str = "passed"
    suite: str = "gold"

    def metadata(self) -> dict:
        return asdict(self)

    @classmethod
    def parse(cls, meta: dict) -> GoldCommit | None:
        """The commit ``meta`` describes, or None when it lacks a field (not written by this version)."""
        names = {f.name for f in fields(cls)}
        if not names <= set(meta):
            return None
        return cls(**{k: meta[k] for k in names})


def tokenizer_source(cfg: EtlConfig) -> str:
    """What the run's tokenizer comes from: a pretrained name or directory, or training settings."""
    if cfg.tokenizer:
        return cfg.tokenizer
    return f"trained:{cfg.tokenizer_kind}:{cfg.vocab_size}:{cfg.tokenizer_sample_docs}"


@dataclass(frozen=True)
class GoldPlan:
    mode: str
    reason: str
    stored: GoldCommit | None = None


def plan_gold(stored: dict | None, cfg: EtlConfig, tokenizer_dir: Path, *, labels: list[str]) -> GoldPlan:
    """Append to or rebuild gold, given its last commit's metadata (None: no gold table) and the
    silver table's ``labels``."""
    if stored is None:
        return GoldPlan(REBUILD, "no gold table yet")
    if cfg.rebuild_gold:
        return GoldPlan(REBUILD, "rebuild_gold asked for")
    commit = GoldCommit.parse(stored)
    if commit is None:
        return GoldPlan(REBUILD, "the last gold commit was not written by this tokenlake version")
    changed = [
        name
        for name, was, now in (
            ("tokenizer", commit.tokenizer_source, tokenizer_source(cfg)),
            ("max_len", commit.max_len, cfg.max_len),
            ("task", commit.task, cfg.task),
        )
        if was != now
    ]
    if changed:
        return GoldPlan(REBUILD, f"{', '.join(changed)} changed", commit)
    source = pretrained_dir(cfg.tokenizer) if cfg.tokenizer else tokenizer_dir
    if not (source / TOKENIZER_FILE).is_file() or fingerprint(source) != commit.tokenizer_fingerprint:
        return GoldPlan(REBUILD, f"the tokenizer in {source} is not the one gold was tokenized with", commit)
    if cfg.task == "classification" and set(labels) - set(commit.labels):
        return GoldPlan(REBUILD, f"new labels: {sorted(set(labels) - set(commit.labels))}", commit)
    return GoldPlan(APPEND, "same tokenizer, max_len, task and labels", commit)


def install_tokenizer(plan: GoldPlan, cfg: EtlConfig, tokenizer_dir: Path, sample) -> str:
    """Make ``tokenizer_dir`` hold the run's tokenizer; return its fingerprint. An append keeps the
    stored one; a rebuild copies the pretrained one or trains one on ``sample()`` (texts)."""
    if plan.mode == APPEND and not cfg.tokenizer:
        return plan.stored.tokenizer_fingerprint
    shutil.rmtree(tokenizer_dir, ignore_errors=True)
    if cfg.tokenizer:
        return copy_tokenizer(cfg.tokenizer, tokenizer_dir)
    tok = train_tokenizer(sample(), kind=cfg.tokenizer_kind, vocab_size=cfg.vocab_size)
    return save_tokenizer(tok, tokenizer_dir, kind=cfg.tokenizer_kind, max_len=cfg.max_len)


def write_labels(tokenizer_dir: Path, labels: list[str]) -> None:
    (tokenizer_dir / LABELS_FILE).write_text(json.dumps({n: i for i, n in enumerate(labels)}, indent=1))


def gold_docs(silver: DataFrame, labels: list[str], task: str) -> DataFrame:
    """``id, split, [label id,] text``: what is tokenized, labels as their index in ``labels``."""
    if task != "classification":
        return silver.select("id", "split", "text")
    label_ids = F.create_map(*[F.lit(x) for i, n in enumerate(labels) for x in (n, i)])
    return silver.select("id", "split", label_ids[F.col("label")].alias("label"), "text")
