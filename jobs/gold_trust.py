"""Which gold version training may use: one whose Delta commit records a passed validation and
this work dir's tokenizer, whose rows (with Spark) or file sizes (without) are what the commit
recorded, and whose tokenizer fits the model asked for."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from pyspark.sql import SparkSession

from tokenlake.etl.gold import GoldCommit
from tokenlake.etl.lake import commit_metadata, error_cause, is_bad_file_error, latest_version, read_table, table_digest
from tokenlake.etl.storage import WorkDir, exists
from tokenlake.etl.tokenize import fingerprint, pretrained_dir
from tokenlake.jobs.config import PipelineConfig
from tokenlake.training import gold_files


class GoldRefused(RuntimeError):
    """The gold version asked for is not one that training may use."""


def gold_path(work: WorkDir | Path) -> str:
    return WorkDir.of(work).path("lake", "gold")


def _check_commit(work: WorkDir, path: str, version: int, meta: dict) -> None:
    """A gold commit training may use: it records a passed validation and ``WORK/tokenizer``."""
    if meta.get("validation") != "passed":
        raise GoldRefused(
            f"gold version {version} at {path} has no passed validation in its commit; training refuses it"
        )
    tokenizer_fp = fingerprint(work.local / "tokenizer")
    if meta.get("tokenizer_fingerprint") != tokenizer_fp:
        raise GoldRefused(
            f"gold version {version} was tokenized with tokenizer {meta.get('tokenizer_fingerprint')}, "
            f"but {work.path('tokenizer')} holds {tokenizer_fp}: re-run the ETL or pick the matching version"
        )


def parse_commit(path: str, version: int, meta: dict) -> GoldCommit:
    """The ``GoldCommit`` a gold version's metadata holds; ``GoldRefused`` if it lacks a field (a
    version written by an older tokenlake, or not by tokenlake at all)."""
    commit = GoldCommit.parse(meta)
    if commit is None:
        missing = sorted({f.name for f in fields(GoldCommit)} - set(meta))
        raise GoldRefused(
            f"gold version {version} at {path} has no {', '.join(missing)} in its commit (not written by this "
            "tokenlake): rebuild gold with `tokenlake etl --rebuild-gold`"
        )
    return commit


def usable_gold(spark: SparkSession, work: WorkDir | Path, version: int | None) -> tuple[dict, GoldCommit]:
    """``({"path", "version", "digest"}, its GoldCommit)`` of a gold version that passed
    validation, was tokenized with the tokenizer in ``WORK/tokenizer`` and still has the digest
    recorded when it was published; ``GoldRefused`` otherwise."""
    work = WorkDir.of(work)
    path = gold_path(work)
    if not exists(f"{path}/_delta_log"):
        raise GoldRefused(f"no gold table at {path}: run `tokenlake etl --work {work.uri}` first")
    version = latest_version(spark, path) if version is None else int(version)
    meta = commit_metadata(spark, path, version)
    _check_commit(work, path, version, meta)
    try:
        digest = table_digest(read_table(spark, path, version))
    except Exception as exc:  # a file replaced or truncated outside Delta often no longer reads
        if not is_bad_file_error(exc):  # an outage or a memory error is not a tampered table
            raise
        raise GoldRefused(
            f"gold version {version} at {path} cannot be read back ({error_cause(exc, 200)}): its files "
            "were changed outside Delta; training refuses it"
        ) from exc
    commit = parse_commit(path, version, meta)
    if commit.digest != digest:
        raise GoldRefused(
            f"gold version {version} at {path} does not match the digest recorded when it was published "
            f"({commit.digest} recorded, {digest} now): its files were changed outside Delta; training refuses it"
        )
    return {"path": path, "version": version, "digest": digest}, commit


def check_model_tokenizer(cfg: PipelineConfig, commit: GoldCommit) -> None:
    """A warm-started model must have been fed ids from its own tokenizer."""
    if not cfg.train.pretrained:
        return
    model_fp = fingerprint(pretrained_dir(cfg.train.model))
    if commit.tokenizer_fingerprint != model_fp:
        raise GoldRefused(
            f"model {cfg.train.model!r} carries tokenizer {model_fp[:12]}..., but gold was tokenized with "
            f"{commit.tokenizer_fingerprint[:12]}...: run the ETL with --set etl.tokenizer="
            f"{cfg.train.model} (or --model {cfg.train.model}) first"
        )


def usable_gold_files(work: WorkDir | Path, path: str, version: int | None) -> tuple[dict, GoldCommit]:
    """``usable_gold`` without Spark: the commit must record a passed validation and this work
    dir's tokenizer, and every file must have the size its commit recorded (the row digest needs
    Spark's hash, so ``--no-spark`` checks sizes instead)."""
    work = WorkDir.of(work)
    try:
        version = gold_files.latest_version(path) if version is None else int(version)
        meta = gold_files.commit_metadata(path, version)
        gold_files.delta_files(path, version, check_sizes=True)
    except (OSError, ValueError) as exc:
        raise GoldRefused(f"gold at {path}: {exc}") from exc
    _check_commit(work, path, version, meta)
    commit = parse_commit(path, version, meta)
    return {"path": path, "version": version, "digest": commit.digest}, commit
