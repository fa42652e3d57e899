"""Gold: the tokenized table training reads, and what its commits record.

A run either **appends** to gold (only the silver rows added since the gold version it extends are
tokenized and written as new balanced files) or **rebuilds** it from the whole silver table. It
appends when a gold table exists whose last commit was made with the same tokenizer (the
fingerprint decides: a trained tokenizer is kept in ``WORK/tokenizer`` and reused, not trained
again), ``max_len``, task and label set; anything else, or ``rebuild`` asked for, rebuilds.
``GoldPlan.reason`` says why.

``build_gold`` is the run's last stage, in three steps: the tokenizer (kept, copied or trained),
the gold frame (silver's rows to add, tokenized and, for a causal LM, packed into blocks), and its
publication (the gold suite, then one commit of balanced files whose metadata is a ``GoldCommit``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from tokenlake.etl.balance import balance_partitions, balance_report, file_count
from tokenlake.etl.config import EtlConfig, Task
from tokenlake.etl.context import EtlRun, log, suite_params
from tokenlake.etl.lake import (
    added_files,
    combine_digests,
    commit_metadata,
    read_table,
    table_digest,
    write_table,
)
from tokenlake.etl.pack import pack_blocks
from tokenlake.etl.tokenize import (
    CHARS_PER_TOKEN,
    TOKENIZER_FILE,
    copy_tokenizer,
    fingerprint,
    pretrained_dir,
    save_tokenizer,
    tokenize_docs,
    train_tokenizer,
    vocab_size,
)

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
    if cfg.task == Task.CLASSIFICATION and set(labels) - set(commit.labels):
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
    if task != Task.CLASSIFICATION:
        return silver.select("id", "split", "text")
    label_ids = F.create_map(*[F.lit(x) for i, n in enumerate(labels) for x in (n, i)])
    return silver.select("id", "split", label_ids[F.col("label")].alias("label"), "text")


def label_names(silver: DataFrame) -> list[str]:
    """The label set, ordered numerically when every label is an integer, else by name."""
    names = [r[0] for r in silver.select("label").distinct().collect()]
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def tokenizer_sample(silver: DataFrame, n: int, chars: int | None = None) -> Iterator[str]:
    """``n`` train-split texts chosen by hash: the same sample on every run, never other splits.
    ``chars``: each text only up to the end of the word at that many characters, the part of it
    that a truncated document keeps (all of it: ``None``).

    The texts stream to the caller a partition at a time: only the ``n`` smallest (hash, id) keys
    are gathered in one place, then every train row up to the last of them is read where it lies.
    (Sorting the texts themselves and taking ``n`` gathered the whole sample in one partition,
    and the driver's JVM grew by 560 MB for a 50,000-document sample of the 200 MB benchmark.)"""
    text = F.col("text") if chars is None else F.regexp_extract("text", rf"(?sU)^.{{0,{chars}}}\w*", 0)
    train, key = silver.where(F.col("split") == "train"), F.xxhash64("id")
    last = train.select(key.alias("h"), "id").orderBy("h", "id").limit(n).agg(F.max(F.struct("h", "id"))).first()[0]
    if last is None:
        return iter(())
    within = (key < last["h"]) | ((key == last["h"]) & (F.col("id") <= last["id"]))
    return (r[0] for r in train.where(within).select(text).toLocalIterator())


def build_gold(run: EtlRun, silver: DataFrame, added: DataFrame) -> None:
    """Append silver's new rows to gold, or rebuild gold from all of ``silver`` (the table at the
    version this run published; ``added``: the rows this run's MERGE added to it), filling
    ``run.result``'s tokenizer, gold and partition figures."""
    plan = _tokenizer(run, silver)
    append = plan.mode == APPEND
    rows = _silver_gained(run, silver, added, plan.stored.silver_version) if append else silver
    gold, totals = _gold_frame(run, rows, prefix=f"s{run.result.tables['silver']['version']}-" if append else "")
    try:
        _publish_gold(run, gold, totals, plan)
    finally:
        gold.unpersist()


def _silver_gained(run: EtlRun, silver: DataFrame, added: DataFrame, since: int) -> DataFrame:
    """The rows ``silver`` gained after version ``since`` (the one gold last took in). Usually
    gold took in every silver version before this run's, and they are ``added``, the rows this
    run added (no read of the lake). Else, where an earlier run stopped between publishing
    silver and gold, the rows whose id silver did not hold at ``since`` (the whole table read)."""
    found, published = run.found["silver"], run.result.tables["silver"]["version"]
    if found == since and published <= found + 1:  # no commit but this run's MERGE since
        return added
    log.info("gold: silver version %s was not taken in by gold (%s): its rows looked up", found, since)
    taken = read_table(run.spark, run.path("silver"), since).select("id")
    return silver.join(taken, "id", "left_anti")


def _tokenizer(run: EtlRun, silver: DataFrame) -> GoldPlan:
    """Decide between append and rebuild (``plan_gold``) and install the run's tokenizer and labels."""
    cfg, result = run.cfg, run.result
    tokenizer_dir = run.work.local / "tokenizer"
    found = run.found["gold"]  # gold's version as the run found it
    stored_meta = None if found is None else commit_metadata(run.spark, run.path("gold"), found)
    labels = label_names(silver) if cfg.task == Task.CLASSIFICATION else []
    plan = plan_gold(stored_meta, cfg, tokenizer_dir, labels=labels)
    log.info("gold: %s (%s)", plan.mode, plan.reason)
    with run.stage("tokenizer"):
        # a classifier sees each document's first max_len tokens: the vocabulary is learnt from those
        chars = None if cfg.task == Task.CAUSAL_LM else cfg.max_len * CHARS_PER_TOKEN
        sample = partial(tokenizer_sample, silver, cfg.tokenizer_sample_docs, chars)
        result.tokenizer_fingerprint = install_tokenizer(plan, cfg, tokenizer_dir, sample)
        result.tokenizer_dir = str(tokenizer_dir)
        result.vocab_size = vocab_size(tokenizer_dir)
    if cfg.task == Task.CLASSIFICATION:
        result.labels = plan.stored.labels if plan.mode == APPEND else labels
        write_labels(tokenizer_dir, result.labels)
    return plan


def _gold_frame(run: EtlRun, rows: DataFrame, *, prefix: str) -> tuple[DataFrame, dict]:
    """``rows`` tokenized (and, for a causal LM, packed into blocks whose ids start with ``prefix``),
    persisted, with its row and token totals; counts the rows tokenized in the gold table's report."""
    cfg = run.cfg
    causal = cfg.task == Task.CAUSAL_LM
    tokenized = run.spark.sparkContext.accumulator(0)
    with run.stage("tokenize") as progress:
        tokens = tokenize_docs(
            gold_docs(rows, run.result.labels, cfg.task),
            tokenizer_file=str(Path(run.result.tokenizer_dir) / TOKENIZER_FILE),
            max_len=None if causal else cfg.max_len,
            counter=tokenized,
        )
        gold = pack_blocks(tokens, block_len=cfg.max_len, prefix=prefix) if causal else tokens
        gold = gold.persist(StorageLevel.MEMORY_AND_DISK)
        row = gold.agg(F.count(F.lit(1)).alias("rows"), F.sum("n_tokens").alias("tokens")).first()
        totals = {"rows": row["rows"], "tokens": row["tokens"] or 0, "tokenized": tokenized}
        progress["rows"] = totals["rows"]
    if causal:
        run.result.packing = {
            "blocks": totals["rows"],
            "block_len": cfg.max_len,
            "real_token_fraction": totals["tokens"] / max(totals["rows"] * cfg.max_len, 1),
        }
    return gold, totals


def _publish_gold(run: EtlRun, gold: DataFrame, totals: dict, plan: GoldPlan) -> None:
    """Gate ``gold`` (the rows this run adds) with the gold suite, then commit it with its
    ``GoldCommit`` as balanced files (appended, or replacing the table), and report the balance."""
    cfg, result, spark, gold_path = run.cfg, run.result, run.spark, run.path("gold")
    append = plan.mode == APPEND
    params = suite_params("gold", cfg, vocab_size=result.vocab_size, labels=result.labels)
    run.gate(gold, "gold", params, stored=run.stored["gold"] if append else None)
    digest = table_digest(gold)
    commit = GoldCommit(
        tokenizer_fingerprint=result.tokenizer_fingerprint,
        tokenizer_source=tokenizer_source(cfg),
        vocab_size=result.vocab_size,
        max_len=cfg.max_len,
        task=cfg.task,
        labels=result.labels,
        split_fractions=list(cfg.split_fractions),
        silver_version=result.tables["silver"]["version"],
        rows=plan.stored.rows + totals["rows"] if append else totals["rows"],
        digest=combine_digests(plan.stored.digest, digest) if append else digest,
        mode=plan.mode,
    )
    result.gold_digest = commit.digest
    files = file_count(totals["tokens"], target_per_file=cfg.target_file_tokens, min_files=cfg.min_files)
    with run.stage("publish_gold") as progress:
        progress["rows"] = totals["rows"]
        if append and totals["rows"] == 0:  # nothing new: gold stays at its version
            version = run.found["gold"]
        else:
            version = write_table(
                balance_partitions(gold, weight=F.col("n_tokens"), files=files),
                gold_path,
                mode="append" if append else "overwrite",
                metadata=commit.metadata(),
                row_group_bytes=cfg.row_group_mb << 20,
            )
    written = read_table(spark, gold_path, version)
    file_name = F.element_at(F.split(F.col("_metadata.file_path"), "/"), -1)
    new_files = file_name.isin(added_files(spark, gold_path, version)) if totals["rows"] else F.lit(False)
    result.partitions = balance_report(gold, written.where(new_files), weight=F.col("n_tokens"), files=files)
    result.tables["gold"] = {
        "path": gold_path,
        "version": version,
        "digest": result.gold_digest,
        "mode": plan.mode,
        "mode_reason": plan.reason,
        "rows_tokenized": totals["tokenized"].value,
    }
