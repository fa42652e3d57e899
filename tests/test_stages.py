"""The stages one by one, as scheduled tasks run them: etl -> validate -> train, plus the gold
versions that training must refuse and a real MLflow tracking server over HTTP."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tokenlake.jobs.cli import EXIT_BUSY, EXIT_CONFIG, EXIT_TRAINING, EXIT_VALIDATION, main
from tokenlake.jobs.overview import mlflow_server_command

from conftest import free_port


@pytest.fixture
def work_copy(etl_work, tmp_path) -> Path:
    """A private copy of the ETL's work dir, for tests that tamper with it."""
    return Path(shutil.copytree(etl_work, tmp_path / "work"))


def test_etl_stage_publishes_validated_gold_without_training(etl_work):
    report = json.loads((etl_work / "report.json").read_text())
    rows = report["rows"]
    assert rows["read"] == rows["clean"] + rows["quarantined"] + rows["duplicates_exact"] == 2005
    assert report["tables"]["gold"]["version"] == 0 and report["validation"]["success"] is True
    assert report["training"] is None and not (etl_work / "model").exists()


def test_the_validation_page_renders_offline_in_a_browser_and_says_what_the_results_say(etl_work, tmp_path):
    """Debian's chromium, headless, with every host name unresolvable: the page's text names each
    suite's table, version and rows, and each expectation's observed value and outcome in words."""
    import html

    from tokenlake.etl.validation_page import rows_of

    report = json.loads((etl_work / "report.json").read_text())
    page = Path(report["validation"]["page"])
    assert page == etl_work / "validation" / "index.html"
    assert "http" not in page.read_text().replace(str(etl_work), "")  # nothing to fetch
    browser = shutil.which("chromium")
    assert browser, "chromium is needed (make test installs it: apt-get install chromium)"
    offline = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
               f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*offline, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout  # fmt: skip
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom.split("<body>", 1)[1])).split())
    for suite, table in report["tables"].items():
        result = json.loads((etl_work / "validation" / f"{suite}.json").read_text())
        assert f"{suite}: passed table {table['path']} , Delta version {table['version']}" in text
        assert f"{result['metrics']['rows']} rows" in text
        for row in rows_of(result):
            observed = row["observed"] if isinstance(row["observed"], str) else json.dumps(row["observed"])
            assert f"{row['expectation']} {row['expected']} {observed} passed".replace("  ", " ") in text, row
    shot = tmp_path / "page.png"
    subprocess.run([*offline, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()], capture_output=True,
                   timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # drawn, not blank


def test_validate_stage_revalidates_the_published_version(etl_work):
    assert main(["validate", "--work", str(etl_work)]) == 0
    report = json.loads((etl_work / "report.json").read_text())
    assert report["validation"]["suites"]["gold"]["success"] is True
    assert report["validation"]["suites"]["gold"]["evaluated"] == 13
    assert "validate_published" in report["timings_s"]


def _append_unvalidated_gold(spark, work: Path) -> int:
    """A gold version written behind the gate: same rows, no validation in its commit."""
    from tokenlake.etl.lake import read_table, write_table

    gold = str(work / "lake/gold")
    return write_table(read_table(spark, gold, 0).limit(50), gold, mode="append")


def test_train_refuses_a_gold_version_that_did_not_pass_validation(spark, work_copy, capsys):
    version = _append_unvalidated_gold(spark, work_copy)
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


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a free loopback port (sqlite backend, local artifact store)."""
    port = free_port()
    proc = subprocess.Popen(
        mlflow_server_command(tmp_path / "server.db", tmp_path / "server-artifacts", port),
        stdout=(tmp_path / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.slow
def test_train_an_older_version_logging_to_an_mlflow_server(spark, work_copy, mlflow_server):
    import mlflow
    import pandas as pd
    import torch
    from mlflow.tracking import MlflowClient
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _append_unvalidated_gold(spark, work_copy)  # latest is unusable: --data-version 0 must be used
    assert (
        main(["train", "--work", str(work_copy), "--data-version", "0", "--epochs", "2", "--mlflow-uri", mlflow_server])
        == 0
    )
    report = json.loads((work_copy / "report.json").read_text())
    assert report["training"]["data"]["version"] == 0
    client = MlflowClient(tracking_uri=mlflow_server)  # read back through the REST API
    run = client.get_run(report["training"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["delta.gold.version"] == "0" and run.data.tags["validation.success"] == "true"
    assert run.data.metrics["test_accuracy"] == pytest.approx(report["training"]["metrics"]["test_accuracy"])
    assert run.data.params["train.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"tokenizer", "validation", "report.json"} <= artifacts
    logged_validation = {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    assert {"validation/gold.json", "validation/silver.json", "validation/data_docs"} <= logged_validation
    # the logged model reloads through the server and predicts what the trained model predicts
    mlflow.set_tracking_uri(mlflow_server)
    logged = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    model = mlflow.pyfunc.load_model(f"models:/{logged[0].model_id}")
    trained = AutoModelForSequenceClassification.from_pretrained(str(work_copy / "model"))
    tok = AutoTokenizer.from_pretrained(str(work_copy / "tokenizer"))
    texts = ["the striker scored a goal in the match and the team won the league", "Pasta, not stock. A week."]
    batch = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        probs = torch.softmax(trained.eval()(**batch).logits, dim=1)
    out = model.predict(pd.DataFrame({"text": texts}))
    labels = report["tokenizer"]["labels"]
    assert torch.allclose(torch.tensor(out[[f"prob_{n}" for n in labels]].to_numpy()), probs, atol=1e-5)
    assert out["label"][0] == "sports"


def test_a_pretrained_model_refuses_gold_made_with_another_tokenizer(etl_work, capsys):
    assert main(["train", "--work", str(etl_work), "--model", "minilm"]) == EXIT_VALIDATION
    assert "carries tokenizer" in capsys.readouterr().err


@pytest.mark.slow
def test_minilm_warm_start_uses_its_own_tokenizer_and_learns(spark, tmp_path):
    from tokenlake.etl.tokenize import fingerprint, pretrained_dir
    from tokenlake.synthetic.generate import generate_corpus

    # topics only (no "X, not Y" documents): seven steps check the warm start, not word order
    corpus = generate_corpus(tmp_path / "small.jsonl", 300, seed=11, contrast=0.0)
    work = tmp_path / "work"
    assert (
        main(
            [
                "run",
                "--input",
                str(corpus),
                "--work",
                str(work),
                "--model",
                "minilm",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--max-len",
                "64",
            ]
        )
        == 0
    )
    report = json.loads((work / "report.json").read_text())
    assert report["tokenizer"]["fingerprint"] == fingerprint(pretrained_dir("minilm"))
    assert report["tokenizer"]["fingerprint"] == fingerprint(work / "tokenizer")
    assert report["training"]["metrics"]["test_accuracy"] > 0.6  # four classes: chance is 0.25
    config = json.loads((work / "model/config.json").read_text())
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6  # MiniLM-L6, not a fresh model


def _gold_data(spark, work):
    """The report's gold version, and what its commit defines for the model."""
    from tokenlake.etl.gold import GoldCommit
    from tokenlake.etl.lake import commit_metadata
    from tokenlake.training.config import GoldData

    gold = json.loads((work / "report.json").read_text())["tables"]["gold"]
    return gold, GoldData.of_commit(GoldCommit.parse(commit_metadata(spark, gold["path"], gold["version"])))


def test_failed_training_leaves_no_model_and_no_copy(spark, work_copy):
    from dataclasses import replace

    from tokenlake.training.config import TrainConfig
    from tokenlake.training.launch import launch_training

    gold, data = _gold_data(spark, work_copy)
    data = replace(data, vocab_size=2)
    with pytest.raises(RuntimeError):  # token ids beyond a 2-word vocabulary: every rank crashes
        launch_training(spark, gold, work_copy, TrainConfig(epochs=1), data)
    assert not (work_copy / "petastorm_cache").exists()
    assert not (work_copy / "model" / "config.json").exists()


def _relaid_gold(spark, gold, path, frame_of):
    """Gold's rows written again as another Delta table, laid out by ``frame_of(rows)``."""
    from tokenlake.etl.lake import read_table, write_table

    rows = read_table(spark, gold["path"], gold["version"])
    return {"path": str(path), "version": write_table(frame_of(rows), str(path))}


def test_ranks_with_uneven_shards_run_the_same_steps_and_finish(spark, work_copy):
    from pyspark.sql import functions as F

    from tokenlake.training import launch
    from tokenlake.training.config import TrainConfig

    gold, data = _gold_data(spark, work_copy)

    def skewed(rows):  # two files, about 90% and 10% of the rows: rank 0 reads one, rank 1 the other
        key = (F.xxhash64("id") % 10 == 0).cast("int")
        return rows.withColumn("_k", key).repartitionByRange(2, "_k").drop("_k")

    table = _relaid_gold(spark, gold, work_copy / "skewed_gold", skewed)
    result = launch.launch_training(spark, table, work_copy, TrainConfig(epochs=1, checkpoint_steps=0), data)
    small, large = sorted(result["data_path"]["rows_per_rank"]["train"])
    assert small * 5 < large  # the shards really were uneven
    assert result["ranks_confirmed"] == 2 and result["steps_per_epoch"] == (small + large) // (32 * 2)
    assert result["data_path"]["copy_bytes"] == 0 and result["data_path"]["files"] == 2
    assert 0 < result["startup_s"] < result["train_seconds"] + 600


def test_a_split_in_too_few_row_groups_for_the_ranks_is_refused(spark, work_copy):
    from tokenlake.training.config import TrainConfig
    from tokenlake.training.launch import TrainingFailed, launch_training

    gold, data = _gold_data(spark, work_copy)
    table = _relaid_gold(spark, gold, work_copy / "one_file_gold", lambda rows: rows.coalesce(1))
    (work_copy / "model").mkdir()
    (work_copy / "model" / "config.json").write_text("{}")  # the last run's model
    with pytest.raises(TrainingFailed, match=r"train split is in 1 of gold's 1 row groups.*2 processes"):
        launch_training(spark, table, work_copy, TrainConfig(epochs=1, num_processes=2), data)
    assert (work_copy / "model" / "config.json").read_text() == "{}"  # refused before anything was removed


NO_SPARK_CHECK = """
import sys
from tokenlake.jobs.cli import main
rc = main(sys.argv[1:])
from pyspark import SparkContext
assert SparkContext._active_spark_context is None, "a SparkContext was started"
sys.exit(rc)
"""


@pytest.mark.parametrize("ranks", [1, 2])
def test_train_without_spark_on_the_gold_files(work_copy, ranks):
    """``--no-spark``: no SparkContext, no JVM; one process, or two ranks under torchrun."""
    import sys

    args = ["train", "--work", str(work_copy), "--no-spark", "--epochs", "3", "--set", "train.checkpoint_steps=0"]
    if ranks == 1:
        cmd = [sys.executable, "-c", NO_SPARK_CHECK, *args]
    else:
        script = work_copy / "no_spark_check.py"
        script.write_text(NO_SPARK_CHECK)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(free_port()), str(script), *args]  # fmt: skip
    subprocess.run(cmd, check=True, timeout=600, env={**os.environ, "JAVA_HOME": "/nonexistent"})
    report = json.loads((work_copy / "report.json").read_text())
    training = report["training"]
    assert training["data"]["path"] == str(work_copy / "lake" / "gold")
    assert training["metrics"]["test_accuracy"] > 0.8 and "baseline_test_accuracy" not in training["metrics"]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{work_copy / 'mlflow.db'}").get_run(training["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["spark_master"] == "none (--no-spark)" and run.data.tags["world_size"] == str(ranks)


def test_early_stopping_ends_training_when_validation_stops_improving(work_copy):
    # no improvement counts unless it beats the best validation loss by 100: epoch 2 ends it
    patience = ["--set", "train.early_stopping_patience=1", "--set", "train.early_stopping_min_delta=100"]
    args = ["train", "--work", str(work_copy), "--no-spark", "--epochs", "4", "--set", "train.checkpoint_steps=0"]
    assert main([*args, *patience]) == 0
    training = json.loads((work_copy / "report.json").read_text())["training"]
    assert [e["epoch"] for e in training["epochs"]] == [1, 2]
    assert training["stopped_early"] is True
    assert training["best_epoch"] == min(training["epochs"], key=lambda e: e["val_loss"])["epoch"]
    assert (work_copy / "model" / "config.json").is_file()  # the last model trained is kept and logged
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (work_copy / "model").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # readable as the work dir's other files are


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
    train = ["--epochs", "2", "--batch-size", "16", "--set", "train.checkpoint_steps=10",
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
