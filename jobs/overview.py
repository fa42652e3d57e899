"""Commands that look and change nothing: ``config show``, ``run --dry-run``, ``runs``, ``tables``, ``ui``.

None of them starts Spark: the Delta tables' histories are read from their ``_delta_log``
directly, the MLflow runs through MLflow's client, the input files through fsspec.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from tokenlake.etl import storage
from tokenlake.etl.formats import unknown_format
from tokenlake.etl.sources import FORMATS, data_files, file_format
from tokenlake.jobs.config import SECTIONS, PipelineConfig, Resolved

TABLES = ("bronze", "silver", "gold", "quarantine")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])  # fmt: skip


# ---------------------------------------------------------------- config show


def config_lines(resolved: Resolved) -> str:
    """Every setting, its effective value and where it came from."""
    cfg = resolved.config
    rows = []
    for section in SECTIONS:
        for f in dataclasses.fields(SECTIONS[section]):
            key = f"{section}.{f.name}"
            value = getattr(getattr(cfg, section), f.name)
            origin = resolved.origins[key]
            if key == "train.lr" and value is None:  # the effective rate, not "None"
                dp = " and train.dp_epsilon" if cfg.train.dp_fine_tuning else ""
                value, origin = cfg.train.peak_lr, f"{origin}: by train.model ({cfg.train.model}){dp}"
            if key == "train.batch_size" and value is None:
                value, origin = cfg.train.global_batch, f"{origin}: by train.model ({cfg.train.model})"
            if key == "train.trainable_layers" and value is None and cfg.train.top_layers is not None:
                value, origin = cfg.train.top_layers, f"{origin}: by train.dp_epsilon"
            rows.append([key, json.dumps(list(value) if isinstance(value, tuple) else value), origin])
    return _table(rows, ["key", "value", "from"])


# ---------------------------------------------------------------- dry run


def input_files(path: str, unknown: str = "json") -> list[tuple[str, str, int]]:
    """``(file, format, bytes)`` of every data file ``tokenlake etl --input path`` would read (a
    file without a known extension as ``unknown``)."""
    found: dict[str, int] = {}
    for pattern in (p.strip() for p in path.split(",") if p.strip()):
        fs, where = storage.filesystem(pattern)
        scheme = pattern.split("://", 1)[0] + "://" if "://" in pattern else ""
        for match in fs.glob(where) or []:
            sizes = {f: i["size"] for f, i in fs.find(match, detail=True).items()} if fs.isdir(match) else {
                match: fs.size(match)}  # fmt: skip
            found.update({(f if f.startswith(scheme) else scheme + f): n for f, n in sizes.items()})
    return [(f, file_format(f, unknown), found[f]) for f in data_files(found, path)]


def delta_jars() -> str:
    """Whether Delta's JARs are in Ivy's or Maven's local cache (else Spark resolves them on its first start)."""
    from tokenlake.jobs.session import _delta_version

    version = _delta_version()
    name = f"delta-spark_2.13-{version}.jar"
    home = Path.home()
    maven = home / ".m2/repository/io/delta/delta-spark_2.13" / version / name
    candidates = [*home.glob(f".ivy2*/jars/io.delta_{name}"), maven]
    found = [p for p in candidates if p.is_file()]
    if found:
        return f"cached at {found[0]}"
    return f"io.delta:delta-spark_2.13:{version} is not cached; Spark resolves it through Ivy when it starts"


def dry_run_lines(command: str, input_path: str | None, work: str, cfg: PipelineConfig) -> list[str]:
    """What ``tokenlake COMMAND`` would do with ``cfg`` (its names already checked by the caller,
    ``jobs.config.check_names``); raises ``FileNotFoundError`` for missing input."""
    lines = [f"work dir: {work}" + ("" if storage.exists(work) else " (does not exist yet)")]
    if input_path:
        read_as = unknown_format(cfg.etl.text_format)
        files = input_files(input_path, read_as)
        total = sum(size for _, _, size in files)
        lines.append(f"input: {len(files)} file(s), {total:,} bytes")
        lines += [f"  {fmt:8} {size:>14,}  {name}" for name, fmt, size in files]
        unknown = sorted({n for n, _, _ in files if n.rsplit(".", 1)[-1].lower() not in (*FORMATS, "gz", "bz2")})
        if unknown:
            lines.append(
                f"  note: {len(unknown)} file(s) without a known extension are read as "
                + ("e-mail messages (etl.text_format=email)" if read_as == "eml" else "JSON Lines")
            )
    if command in ("run", "train"):
        lines.append(f"model: {cfg.train.model} (task {cfg.etl.task}, lr {cfg.train.peak_lr})")
    trained = f"trained on the train split ({cfg.etl.tokenizer_kind}, {cfg.etl.vocab_size} tokens)"
    lines.append(f"tokenizer: {cfg.etl.tokenizer or trained}")
    lines.append(f"Delta JARs: {delta_jars()}")
    lines.append("dry run: nothing was written")
    return lines


# ---------------------------------------------------------------- tables


def _commits(log_dir: str) -> dict[int, dict]:
    """``version -> {"actions": [...]}`` of the JSON commits kept in a ``_delta_log``."""
    fs, where = storage.filesystem(log_dir)
    commits = {}
    for name in sorted(fs.ls(where, detail=False)):
        base = name.rsplit("/", 1)[-1]
        if base.endswith(".json") and base[:-5].isdigit():
            with fs.open(name, "rt") as fh:
                commits[int(base[:-5])] = [json.loads(line) for line in fh if line.strip()]
    return commits


def _checkpoint_files(log_dir: str, version: int) -> dict[str, int | None]:
    """The live files (path -> rows) of the checkpoint written at ``version``."""
    fs, where = storage.filesystem(log_dir)
    live: dict[str, int | None] = {}
    for part in sorted(fs.glob(f"{where}/{version:020d}.checkpoint*.parquet")):
        # named under log_dir, not by what glob returns: an hdfs:// URI keeps its namenode that way
        with storage.parquet_file(storage.join(log_dir, part.rsplit("/", 1)[-1])) as parquet:
            for row in parquet.read(columns=["add"]).column("add").to_pylist():
                if row:
                    live[row["path"]] = _rows(row.get("stats"))
    return live


def _rows(stats: str | None) -> int | None:
    return json.loads(stats).get("numRecords") if stats else None


def table_history(path: str) -> list[dict]:
    """Each version of the Delta table at ``path`` still in its log: ``version``, ``timestamp``,
    ``operation``, ``rows`` (from the files' statistics; None if a file has none)."""
    log_dir = storage.join(path, "_delta_log")
    commits = _commits(log_dir)
    if not commits:
        return []
    first = min(commits)
    live: dict[str, int | None] = {}
    if first > 0:  # older commits were cleaned up: start from the checkpoint just before the first kept one
        live = _checkpoint_files(log_dir, first - 1)
    history = []
    for version in sorted(commits):
        info = {}
        for action in commits[version]:
            if "add" in action:
                live[action["add"]["path"]] = _rows(action["add"].get("stats"))
            elif "remove" in action:
                live.pop(action["remove"]["path"], None)
            elif "commitInfo" in action:
                info = action["commitInfo"]
        counts = list(live.values())
        history.append({
            "version": version,
            "timestamp": datetime.fromtimestamp(info.get("timestamp", 0) / 1000, UTC).isoformat(timespec="seconds"),
            "operation": info.get("operation", "?"),
            "rows": None if None in counts else sum(counts),
        })  # fmt: skip
    return history


def tables_text(work: storage.WorkDir) -> str:
    rows = []
    for name in TABLES:
        path = work.path("lake", name)
        if not storage.exists(storage.join(path, "_delta_log")):
            continue
        for entry in table_history(path):
            rows.append([name, entry["version"], entry["timestamp"], entry["operation"],
                         "?" if entry["rows"] is None else entry["rows"]])  # fmt: skip
    if not rows:
        return f"no Delta tables under {work.path('lake')}"
    return _table(rows, ["table", "version", "time (UTC)", "operation", "rows"])


# ---------------------------------------------------------------- runs


def runs_text(work: storage.WorkDir, uri: str | None) -> str:
    """The work dir's MLflow runs, newest first: status, start, test accuracy beside the baseline's, gold version."""
    from tokenlake.jobs.mlflow_run import EXPERIMENT, default_mlflow_uri

    uri = uri or default_mlflow_uri(work)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        return f"no MLflow runs: {uri} does not exist"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return f"no MLflow runs in {uri}"
    rows = []
    for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"]):
        metrics = run.data.metrics
        start = datetime.fromtimestamp(run.info.start_time / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        accuracy = [f"{metrics[k]:.4f}" if k in metrics else "-" for k in ("test_accuracy", "baseline_test_accuracy")]
        rows.append([run.info.run_id, run.info.status, start, *accuracy, run.data.tags.get("delta.gold.version", "-")])
    if not rows:
        return f"no MLflow runs in {uri}"
    return _table(rows, ["run", "status", "started (UTC)", "test_accuracy", "baseline", "gold version"])


# ---------------------------------------------------------------- ui


def mlflow_server_command(backend_db: Path, artifacts: Path, port: int) -> list[str]:
    """``mlflow server`` on 127.0.0.1 with a sqlite backend and a local artifact store it proxies."""
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{backend_db.resolve()}",
            "--artifacts-destination", str(artifacts.resolve()), "--workers", "1"]  # fmt: skip


def serve_ui(work: str, port: int) -> int:
    """Replace this process with ``mlflow server`` on the work dir's store (``tokenlake ui``)."""
    local = storage.WorkDir.of(work).local  # a remote work dir's MLflow store is in its local copy
    command = mlflow_server_command(local / "mlflow.db", local / "mlartifacts", port)
    print(f"MLflow UI on http://127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
    os.execv(command[0], command)
