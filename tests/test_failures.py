"""What training refuses and how runs fail: gold versions that did not pass validation, were made
with another tokenizer or were changed behind Delta's back; a killed ETL, SIGTERM, a rank killed
mid-epoch or crashing; and secrets that must never reach logs, the report or MLflow."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tokenlake.jobs.cli import EXIT_BUSY, EXIT_CONFIG, EXIT_TRAINING, EXIT_VALIDATION, main

from conftest import append_unvalidated_gold, gold_data


def test_train_refuses_a_gold_version_that_did_not_pass_validation(spark, work_copy, capsys):
    version = append_unvalidated_gold(spark, work_copy)
    assert main(["train", "--work", str(work_copy)]) == EXIT_VALIDATION
    assert f"gold version {version}" in capsys.readouterr().err
    assert not (work_copy / "model").exists()


def test_train_refuses_gold_made_with_another_tokenizer(work_copy, capsys):
    path = work_copy / "tokenizer/tokenizer.json"
    path.write_text(path.read_text() + "\n")
    assert main(["train", "--work", str(work_copy)]) == EXIT_VALIDATION
    assert "tokenized with tokenizer" in capsys.readouterr().err


def test_train_refuses_gold_whose_files_were_altered_behind_deltas_back(spark, work_copy, capsys):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from tokenlake.etl.lake import read_table

    report = json.loads((work_copy / "report.json").read_text())
    assert report["tables"]["gold"]["digest"].startswith(f"{report['rows']['clean']}:")
    victim = urlparse(read_table(spark, str(work_copy / "lake/gold"), 0).inputFiles()[0]).path
    table = pq.read_table(victim)
    labels = table.column("label").to_numpy().copy()
    labels[0] = 1 - labels[0] if labels[0] in (0, 1) else 0  # one flipped label, same schema and row count
    label = pc.cast(labels, table.schema.field("label").type)
    altered = table.set_column(table.schema.get_field_index("label"), "label", label)
    pq.write_table(altered, victim, use_compliant_nested_type=True)  # a valid file that Spark reads
    Path(victim).with_name(f".{Path(victim).name}.crc").unlink()  # Hadoop's local checksum would catch it first
    assert main(["train", "--work", str(work_copy)]) == EXIT_VALIDATION
    assert "does not match the digest recorded" in capsys.readouterr().err
    assert not (work_copy / "model").exists()


def test_train_refuses_gold_whose_files_no_longer_read(spark, work_copy, capsys):
    from tokenlake.etl.lake import read_table

    victim = urlparse(read_table(spark, str(work_copy / "lake/gold"), 0).inputFiles()[0]).path
    Path(victim).write_bytes(Path(victim).read_bytes()[:100])
    assert main(["train", "--work", str(work_copy)]) == EXIT_VALIDATION
    assert "cannot be read back" in capsys.readouterr().err


def test_a_pretrained_model_refuses_gold_made_with_another_tokenizer(etl_work, capsys):
    assert main(["train", "--work", str(etl_work), "--model", "minilm"]) == EXIT_VALIDATION
    assert "carries tokenizer" in capsys.readouterr().err


def test_failed_training_leaves_no_model_and_no_copy(spark, work_copy):
    from dataclasses import replace

    from tokenlake.training.config import TrainConfig
    from tokenlake.training.launch import launch_training

    gold, data = gold_data(spark, work_copy)
    data = replace(data, vocab_size=2)
    with pytest.raises(RuntimeError):  # token ids beyond a 2-word vocabulary: every rank crashes
        launch_training(spark, gold, work_copy, TrainConfig(epochs=1), data)
    assert not (work_copy / "petastorm_cache").exists()
    assert not (work_copy / "model" / "config.json").exists()


@pytest.mark.slow
def test_etl_killed_while_writing_gold_leaves_the_previous_version_and_reruns_cleanly(spark, corpus, work_copy):
    """kill -9 the ETL once gold's new data files appear, before their commit: readers still get
    the previous version, a re-run completes without duplicates, the history says what happened.
    While it runs, a second run on the work dir is refused (exit 7); once killed, it holds no lock."""
    from tokenlake.etl.lake import read_table
    from tokenlake.etl.storage import LOCK_FILE
    from tokenlake.training.gold_files import delta_files, latest_version

    gold = work_copy / "lake" / "gold"
    before = set(gold.glob("*.parquet"))
    rows_before = read_table(spark, str(gold), 0).count()
    # the same input adds no row, so gold would not be written again unless it is rebuilt
    args = ["etl", "--input", str(corpus), "--work", str(work_copy), "--set", "etl.vocab_size=1000", "--rebuild-gold"]
    caught = None
    for attempt in range(3):  # the window between the files and the commit is short; rarely missed
        proc = subprocess.Popen([sys.executable, "-m", "tokenlake.jobs.cli", *args], start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            if attempt == 0:  # while it runs, a second run on the same work dir is turned away at once
                lock = work_copy / LOCK_FILE
                while proc.poll() is None and "pid" not in (lock.read_text() if lock.exists() else ""):
                    time.sleep(0.005)
                assert main(args) == EXIT_BUSY
            while proc.poll() is None and not (set(gold.glob("*.parquet")) - before):
                time.sleep(0.005)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if latest_version(gold) == 0 and set(gold.glob("*.parquet")) - before:
            caught = set(gold.glob("*.parquet")) - before
            break
        assert latest_version(gold) == 0, "the killed run got as far as committing gold: try again"
    assert caught, "never caught the ETL between writing gold's files and committing them"

    # the table is readable at its previous version; the half-written files are not part of it
    assert latest_version(gold) == 0 and read_table(spark, str(gold)).count() == rows_before
    assert not caught & {Path(f) for f in delta_files(gold)}
    # the re-run completes, and gold holds each document once
    assert main(args) == 0
    rerun = read_table(spark, str(gold))
    assert latest_version(gold) == 1 and rerun.count() == rows_before == rerun.select("id").distinct().count()
    history = [(r["version"], r["operation"]) for r in spark.sql(f"DESCRIBE HISTORY delta.`{gold}`").collect()]
    assert [v for v, _ in history] == [1, 0] and all("WRITE" in op for _, op in history), history


def test_sigterm_ends_the_mlflow_run_as_killed_and_says_where_it_stopped(work_copy):
    """A scheduler's SIGTERM (or Ctrl-C) is not a crash: the run is ended KILLED, not left RUNNING,
    and the one line on stderr says in which stage and from which checkpoint --resume goes on."""
    from mlflow.tracking import MlflowClient

    from tokenlake.training import checkpoint

    args = ["train", "--work", str(work_copy), "--no-spark", "--epochs", "20", "--set", "train.checkpoint_steps=2"]
    err = work_copy / "train.err"
    with err.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tokenlake.jobs.cli", *args], stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.latest(work_copy / "checkpoints") and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err.read_text()[-3000:]
    line = err.read_text().strip().splitlines()[-1]
    client = MlflowClient(f"sqlite:///{work_copy / 'mlflow.db'}")  # the copied work dir may hold older runs
    (run,) = client.search_runs(["1"], order_by=["attributes.start_time DESC"], max_results=1)
    assert line.startswith(f"error: stopped by SIGTERM during train; MLflow run {run.info.run_id} is marked KILLED")
    assert "the latest checkpoint is" in line and "(--resume continues from it)" in line
    assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == "SIGTERM"


@pytest.mark.slow
def test_a_rank_killed_mid_epoch_fails_the_run_within_the_collective_timeout_and_resume_completes(work_copy):
    """kill -9 of one training process: no hang, but exit 6 well within ``collective_timeout_s``
    (plus start-up margin) with one line; the checkpoint stays usable and --resume finishes."""
    import psutil

    from tokenlake.training import checkpoint

    timeout_s = 30
    train = ["--epochs", "2", "--batch-size", "32", "--set", "train.checkpoint_steps=10",
             "--set", f"train.collective_timeout_s={timeout_s}", "--set", "train.baseline=false"]  # fmt: skip
    err = work_copy / "train.err"
    with err.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "tokenlake.jobs.cli", "train", "--work", str(work_copy), *train],
                                stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            found = checkpoint.latest(work_copy / "checkpoints")
            if found and checkpoint.position(found)["step"] > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, err.read_text()[-2000:]

        def rank(p) -> str | None:
            try:
                return p.environ().get("RANK")
            except (psutil.Error, OSError):  # a child that ended (or is a zombie) meanwhile
                return None

        workers = [p for p in psutil.Process(proc.pid).children(recursive=True) if rank(p) == "1"]
        (victim,) = [p for p in workers if p.parent() not in workers]  # the rank, not a process it started
        killed_at = time.monotonic()
        victim.kill()
        proc.wait(timeout=timeout_s + 120)
        took = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT_TRAINING, err.read_text()[-2000:]
    assert took < timeout_s + 30, took
    assert err.read_text().strip().splitlines()[-1].startswith("error: training failed: a training process failed")
    kept = checkpoint.latest(work_copy / "checkpoints")
    assert kept and checkpoint.position(kept)["step"] > 0  # what was saved before the kill is intact
    assert main(["train", "--work", str(work_copy), "--resume", *train]) == 0
    training = json.loads((work_copy / "report.json").read_text())["training"]
    assert [e["epoch"] for e in training["epochs"]] == [1, 2]


def test_secrets_from_the_environment_never_reach_logs_report_or_mlflow(work_copy, capsys, caplog, monkeypatch):
    """MLflow credentials come from the environment only; no password or token shows up anywhere
    we write, in the MLflow store included."""
    secrets = {
        "MLFLOW_TRACKING_USERNAME": "user-4d1f9c",
        "MLFLOW_TRACKING_PASSWORD": "pw-8e2b7a",
        "MLFLOW_TRACKING_TOKEN": "tok-93c0d5",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    # in the URI they are refused without being echoed
    uri = f"http://{secrets['MLFLOW_TRACKING_USERNAME']}:{secrets['MLFLOW_TRACKING_PASSWORD']}@127.0.0.1:9/"
    assert main(["train", "--work", str(work_copy), "--no-spark", "--mlflow-uri", uri]) == EXIT_CONFIG
    refused = capsys.readouterr()
    assert "must not carry credentials" in refused.err

    assert main(["train", "--work", str(work_copy), "--no-spark", "--epochs", "1"]) == 0
    out = capsys.readouterr()
    written = [refused.out, refused.err, out.out, out.err, caplog.text]
    for path in work_copy.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".yaml", ".yml", ".txt", ".log", ".md", "", ".html"}:
            written.append(path.read_text(errors="replace"))
    from mlflow.tracking import MlflowClient

    run_id = json.loads((work_copy / "report.json").read_text())["training"]["mlflow_run_id"]
    run = MlflowClient(tracking_uri=f"sqlite:///{work_copy / 'mlflow.db'}").get_run(run_id)
    store = (work_copy / "mlflow.db").read_bytes().decode("latin-1")
    assert len(written) > 10 and run.data.params  # the search looked at real content
    # the user name is an identity, not a secret: MLflow records it as the run's user, nowhere else
    user = secrets["MLFLOW_TRACKING_USERNAME"]
    assert run.info.user_id == user and {k for k, v in run.data.tags.items() if user in v} == {"mlflow.user"}
    written.append(json.dumps(run.data.params))
    assert not any(user in text for text in written)
    for value in (secrets["MLFLOW_TRACKING_PASSWORD"], secrets["MLFLOW_TRACKING_TOKEN"]):
        assert not any(value in text for text in [*written, json.dumps(run.data.tags), store]), value


def test_train_without_spark_refuses_a_file_changed_behind_deltas_back(work_copy, capsys):
    from tokenlake.training.gold_files import delta_files

    victim = Path(delta_files(work_copy / "lake" / "gold")[0])
    victim.write_bytes(victim.read_bytes() + b"\0")
    assert main(["train", "--work", str(work_copy), "--no-spark"]) == EXIT_VALIDATION
    assert "changed outside Delta" in capsys.readouterr().err


def test_a_rank_that_crashes_exits_6_with_one_line_that_says_why(work_copy, capsys):
    """fp16 needs CUDA: every rank raises as it builds its optimizer, after TorchDistributor started it."""
    args = ["train", "--work", str(work_copy), "--epochs", "1", "--set", "train.mixed_precision=fp16"]
    assert main(args) == EXIT_TRAINING
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    why = "ValueError: mixed_precision=fp16 needs a CUDA device"
    assert err == [f"error: training failed: a training process failed: rank 0: {why}; rank 1: {why}"]
    assert sorted(p.name for p in (work_copy / "failures").iterdir()) == ["rank-0.txt", "rank-1.txt"]
    # without Spark (one process here; each rank alike under torchrun): the same exit and line
    assert main([*args, "--no-spark"]) == EXIT_TRAINING
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [f"error: training failed: rank 0 failed: {why}"]
    # and the process can train again: no process group left behind, no rank in its environment
    import torch.distributed as dist

    assert not dist.is_initialized() and not {"RANK", "WORLD_SIZE", "MASTER_PORT"} & set(os.environ)
    assert main(["train", "--work", str(work_copy), "--epochs", "1", "--no-spark"]) == 0
