"""What every ETL stage is handed and what it hands back.

A stage is a function ``stage(run, df, rows) -> StageOut``: it gets the run's context
(``EtlRun``: the session, work dir, settings, the tables as the run found them, the result being
filled, the GX context) and the previous stage's kept rows (``rows`` of them), and returns the rows
it keeps (persisted and counted), the quarantine rows it rejects and how many rows it removed, by
kind. ``StageOut.check`` holds every stage to rows in = kept + removed, so that the run's
conservation (read = clean + quarantined + duplicates) is a sum ``etl.pipeline`` adds up, never a
count kept by hand. Publishing a table (``EtlRun.publish``) is always the same two steps: the rows
it would gain pass the table's suite, then one MERGE adds them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from pyspark import Accumulator
from pyspark.sql import DataFrame, SparkSession

from tokenlake.etl import reasons
from tokenlake.etl.config import EtlConfig
from tokenlake.etl.lake import merge_new
from tokenlake.etl.language import UNDETERMINED, known_languages
from tokenlake.etl.metrics import split_bounds
from tokenlake.etl.neardup import checkpoint
from tokenlake.etl.storage import WorkDir
from tokenlake.etl.validate import SuiteResult, ValidationFailed, validate_table

log = logging.getLogger("tokenlake.etl")

MERGE_KEYS = {"bronze": "id", "silver": "content_sha256", "quarantine": "reject_id"}
"""The key each table is merged on: a row whose key the table holds is not added again."""


@dataclass
class EtlResult:
    """What training needs from the ETL, and what the report says about it."""

    rows: dict[str, int]
    reject_reasons: dict[str, int]
    tables: dict[str, dict]
    timings_s: dict[str, float]
    tokenizer_dir: str = ""
    tokenizer_fingerprint: str = ""
    vocab_size: int = 0
    labels: list[str] = field(default_factory=list)
    validations: list[SuiteResult] = field(default_factory=list)
    pii: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    """Silver's rows per language (``lang``)."""
    packing: dict | None = None
    partitions: dict = field(default_factory=dict)
    gold_digest: str = ""


class RowsLost(AssertionError):
    """A stage's rows in are not its kept rows plus the rows it removed: a bug, never bad data."""


@dataclass(frozen=True)
class StageOut:
    """A stage's hand-off: ``kept`` (``kept_rows`` rows, read from ``cached``: a persisted frame
    the stage has computed, ``kept`` itself unless given), the rows it quarantined by reason and
    their quarantine rows (``rejects``, persisted: ``id, reject_reason, stage, source_file,
    source_line, raw``), and the rows it dropped otherwise, by kind (``duplicates_exact``, ...)."""

    kept: DataFrame
    kept_rows: int
    rejected: dict[str, int] = field(default_factory=dict)
    rejects: DataFrame | None = None
    removed: dict[str, int] = field(default_factory=dict)
    cached: DataFrame | None = None

    def check(self, stage: str, rows_in: int) -> StageOut:
        out = self.kept_rows + sum(self.rejected.values()) + sum(self.removed.values())
        if rows_in != out:
            raise RowsLost(
                f"stage {stage}: {rows_in} rows in, {self.kept_rows} kept + {self.rejected} quarantined"
                f" + {self.removed} removed"
            )
        return self

    def release(self) -> None:
        """Unpersist what ``kept`` reads (call once the next stage has computed its own rows)."""
        (self.cached if self.cached is not None else self.kept).unpersist()


@dataclass
class EtlRun:
    """One ETL run's context: everything a stage needs besides its input rows."""

    spark: SparkSession
    work: WorkDir
    cfg: EtlConfig
    stored: dict[str, DataFrame | None]
    """Each table as the run found it, pinned to that version (``lake.read_pinned``; None: not there yet)."""
    found: dict[str, int | None]
    """The version of each table the run found (None: not there yet)."""
    result: EtlResult
    gx: Future
    """The GX context, opened in the background while the input is read (``etl.validate.preload``)."""
    signed: Accumulator
    """Documents given a MinHash signature (``etl.neardup``)."""

    def path(self, table: str) -> str:
        return self.work.path("lake", table)

    @contextmanager
    def stage(self, name: str):
        """Time a stage under ``name`` in the report and log it; the body may set
        ``progress["rows"]`` for a rows/s figure."""
        progress: dict[str, int] = {}
        start = time.perf_counter()
        yield progress
        seconds = time.perf_counter() - start
        self.result.timings_s[name] = round(seconds, 3)
        rows = progress.get("rows")
        rate = f"{rows:>10,} rows {rows / max(seconds, 1e-9):>10,.0f} rows/s" if rows is not None else ""
        log.info("stage %-12s %7.1f s %s", name, seconds, rate)

    def gate(self, df: DataFrame, suite: str, params: dict, stored: DataFrame | None = None) -> None:
        """Validate ``df`` before it is published (``stored``: ``df`` is what is appended to that
        published table); a failed suite raises ``ValidationFailed`` with the result so far."""
        with self.stage(f"validate_{suite}"):
            outcome = validate_table(
                df,
                suite,
                params=params,
                row_params=row_params(suite, self.cfg),
                task=self.cfg.task,
                results_dir=self.work.local / "validation",
                suite_dir=self.cfg.expectations_dir or None,
                docs=False,  # rendered once for all suites when the run ends, passed or not
                context=self.gx.result(),
                stored=stored,
            )
        self.result.validations.append(outcome)
        if not outcome.success:
            raise ValidationFailed(outcome, self.result)

    def publish(self, df: DataFrame, table: str) -> tuple[int, DataFrame]:
        """Validate the version ``table`` would become with ``df``'s new rows (the new rows against
        the stored table, ``etl.validate``), then MERGE them in; return how many rows were new, and
        those rows (a checkpoint; ``df`` itself where the table was not there yet), for a later
        stage that needs them."""
        before, key = self.stored[table], MERGE_KEYS[table]
        new = df
        if before is not None:
            # the rows to judge, computed once for the suite's queries, the MERGE and later stages,
            # without the run's lineage: re-planning it made a 1 MB append to a 200 MB lake 10 s slower
            new = checkpoint(df.join(before.select(key), key, "left_anti"))
        self.gate(new, table, suite_params(table, self.cfg), stored=before)
        with self.stage(f"publish_{table}"):
            metadata = {"validation": "passed", "suite": table}
            version, inserted = merge_new(new, self.path(table), key=key, metadata=metadata)
        self.result.tables[table] = {"path": self.path(table), "version": version, "rows_inserted": inserted}
        return inserted, new


def suite_params(suite: str, cfg: EtlConfig, *, vocab_size: int = 0, labels: list | None = None) -> dict:
    """The run-time parameters of each table's suite."""
    if suite == "quarantine":
        return {"reject_reasons": list(reasons.names()), "raw_keep_chars": cfg.raw_keep_chars}
    if suite == "gold":
        return {"max_len": cfg.max_len, "max_token_id": vocab_size - 1, "label_ids": list(range(len(labels or [])))}
    if suite == "silver":
        languages = list(cfg.languages) or sorted(known_languages() | {UNDETERMINED})
        return {"languages": languages, "min_lang_confidence": cfg.min_lang_confidence}
    return {}


def row_params(suite: str, cfg: EtlConfig) -> Callable[[int], dict] | None:
    """The parameters of a suite that depend on its table's row count: the split shares' bounds."""
    return partial(split_bounds, cfg.split_fractions) if suite in ("silver", "gold") else None
