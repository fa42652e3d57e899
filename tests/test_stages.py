"""The stages one by one, as scheduled tasks run them: etl -> validate -> train, a real MLflow
tracking server over HTTP, and the layouts of gold that training's ranks must cope with. What
training refuses and how a run fails: ``tests/test_failures.py``."""

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

import pytest

from tokenlake.jobs.cli import main
from tokenlake.jobs.overview import mlflow_server_command

from conftest import append_unvalidated_gold, free_port, gold_data


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

    append_unvalidated_gold(spark, work_copy)  # latest is unusable: --data-version 0 must be used
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


@pytest.mark.slow
def test_minilm_warm_start_uses_its_own_tokenizer_and_learns(minilm_work):
    from tokenlake.etl.tokenize import fingerprint, pretrained_dir

    work = minilm_work
    report = json.loads((work / "report.json").read_text())
    assert report["tokenizer"]["fingerprint"] == fingerprint(pretrained_dir("minilm"))
    assert report["tokenizer"]["fingerprint"] == fingerprint(work / "tokenizer")
    assert report["training"]["metrics"]["test_accuracy"] > 0.6  # four classes: chance is 0.25
    assert report["training"]["trainable_layers"] is None  # every layer, without DP
    config = json.loads((work / "model/config.json").read_text())
    assert config["hidden_size"] == 384 and config["num_hidden_layers"] == 6  # MiniLM-L6, not a fresh model


def _relaid_gold(spark, gold, path, frame_of, **write):
    """Gold's rows written again as another Delta table, laid out by ``frame_of(rows)`` (``write``:
    more arguments for ``write_table``)."""
    from tokenlake.etl.lake import read_table, write_table

    rows = read_table(spark, gold["path"], gold["version"])
    return {"path": str(path), "version": write_table(frame_of(rows), str(path), **write)}


def test_ranks_with_uneven_shards_run_the_same_steps_and_finish(spark, work_copy):
    from pyspark.sql import functions as F

    from tokenlake.training import launch
    from tokenlake.training.config import TrainConfig

    gold, data = gold_data(spark, work_copy)

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

    gold, data = gold_data(spark, work_copy)
    table = _relaid_gold(spark, gold, work_copy / "one_file_gold", lambda rows: rows.coalesce(1))
    (work_copy / "model").mkdir()
    (work_copy / "model" / "config.json").write_text("{}")  # the last run's model
    with pytest.raises(TrainingFailed, match=r"train split is in 1 of gold's 1 row groups.*2 processes"):
        launch_training(spark, table, work_copy, TrainConfig(epochs=1, num_processes=2), data)
    assert (work_copy / "model" / "config.json").read_text() == "{}"  # refused before anything was removed


def test_one_file_of_small_row_groups_shards_over_two_ranks(spark, work_copy, monkeypatch):
    """Row groups, not files, are what ranks share: gold written as one file of small row groups
    (``write_table``'s ``row_group_bytes``, from ``etl.row_group_mb``) gives both ranks rows; the
    files come from the Delta log in Python, or from Spark where the log was cleaned up."""
    from urllib.parse import urlparse

    from tokenlake.etl.lake import ROW_GROUP_CONF, read_table
    from tokenlake.training import launch

    gold, data = gold_data(spark, work_copy)
    path = work_copy / "small_groups_gold"
    table = _relaid_gold(spark, gold, path, lambda rows: rows.coalesce(1), row_group_bytes=64 << 10)
    assert spark.conf.get(ROW_GROUP_CONF, None) is None  # the session's setting is put back
    files = launch.version_files(spark, table)
    from_spark = sorted(urlparse(f).path for f in read_table(spark, str(path), table["version"]).inputFiles())
    assert files == from_spark and len(files) == 1
    splits, data_path = launch.gold_splits(files, max_len=data.max_len, labelled=True, world=2)
    assert data_path["files"] == 1 and data_path["row_groups"] >= 4
    assert min(data_path["rows_per_rank"]["train"]) > 0 and len(splits["train"]) == sum(
        data_path["rows_per_rank"]["train"]
    )

    def cleaned_up(*args, **kwargs):
        raise launch.LogIncomplete("commit log is not complete from version 0")

    monkeypatch.setattr(launch, "delta_files", cleaned_up)
    assert [urlparse(f).path for f in launch.version_files(spark, table)] == from_spark


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
