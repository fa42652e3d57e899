"""``WORK/report.json``: what a run did, merged stage by stage (``update_report``), so separate
scheduled tasks (etl -> validate -> train) leave the same report as one ``tokenlake run``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from tokenlake.etl.config import EtlConfig
from tokenlake.etl.context import EtlResult
from tokenlake.etl.storage import WorkDir, write_text
from tokenlake.etl.validate import SuiteResult, data_docs_index
from tokenlake.etl.validation_page import write_page
from tokenlake.jobs import tokenlake_version


def read_report(work: WorkDir | Path | str) -> dict:
    path = WorkDir.of(work).local / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def update_report(work: WorkDir | Path | str, **parts) -> dict:
    """Merge ``parts`` into ``WORK/report.json`` (written atomically) and return the whole report,
    stamped with the time it was written and the tokenlake version that wrote it."""
    work = WorkDir.of(work)
    stamp = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "tokenlake_version": tokenlake_version()}
    report = {**read_report(work), **parts, **stamp}
    write_text(work.local / "report.json", json.dumps(report, indent=2, sort_keys=True))
    return report


def validation_summary(results: list[SuiteResult], work: WorkDir, tables: dict) -> dict:
    """Suite results as the report shows them, with paths under the work dir (its URI), and the
    offline page of them (``etl.validation_page``) written."""
    docs = data_docs_index(work.local / "validation")
    page = write_page(work.local / "validation", [r.suite for r in results if r.result_path], tables)
    return {
        "page": work.published(page),
        "data_docs": work.published(docs) if docs.is_file() else None,
        "success": all(r.success for r in results) and bool(results),
        "failed_expectations": [f"{r.suite}: {name}" for r in results for name in r.failed_expectations],
        "suites": {
            r.suite: {
                "success": r.success,
                "evaluated": r.evaluated,
                "unexpected": r.unexpected,
                "result_path": work.published(r.result_path) if r.result_path else None,
            }
            for r in results
        },
    }


def absolute_input(input_path: str) -> str:
    """``--input`` with each local path made absolute (URIs as given), as the report and MLflow keep it."""
    return ",".join(p if "://" in p else os.path.abspath(p) for p in (q.strip() for q in input_path.split(",")) if p)


def etl_report(input_path: str, work: WorkDir, etl: EtlResult, cfg: EtlConfig) -> dict:
    return {
        "input": absolute_input(input_path),
        "etl_config": asdict(cfg),
        "rows": etl.rows,
        "reject_reasons": etl.reject_reasons,
        "tables": etl.tables,
        "validation": validation_summary(etl.validations, work, etl.tables),
        "pii": etl.pii,
        "languages": etl.languages,
        "partitions": etl.partitions,
        **({"packing": etl.packing} if etl.packing else {}),
        "timings_s": dict(etl.timings_s),
        "training": None,
        "tokenizer": {
            "path": work.published(etl.tokenizer_dir) if etl.tokenizer_dir else None,
            "fingerprint": etl.tokenizer_fingerprint,
            "labels": etl.labels,
        },
    }
