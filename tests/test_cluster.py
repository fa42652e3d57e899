"""spark-submit of ``jobs/pipeline_job.py`` to a real Spark standalone cluster on 127.0.0.1:
one master, one 2-core worker, TorchDistributor in cluster mode (barrier tasks on the worker).

Master and worker are started with the installed pyspark's ``spark-daemon.sh`` and stopped by
their PID files, also when the test fails.
"""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

from conftest import free_port

SPARK_HOME = Path(__import__("pyspark").__file__).parent
REPO = Path(__file__).resolve().parents[1]
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def _daemon(env: dict, action: str, cls: str, instance: str, *args: str) -> None:
    subprocess.run(
        [str(SPARK_HOME / "sbin/spark-daemon.sh"), action, cls, instance, *args],
        env=env,
        check=action == "start",
        capture_output=True,
        timeout=120,
    )


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            return sum(w["state"] == "ALIVE" for w in json.load(r)["workers"])
    except OSError:
        return 0


@contextlib.contextmanager
def _cluster(tmp_path: Path, *, workers: int, cores: int, memory: str):
    """A master and ``workers`` workers on 127.0.0.1, stopped by their PID files afterwards."""
    port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_PID_DIR": str(tmp_path / "pids"),
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_IDENT_STRING": "tokenlake-test",
        "SPARK_WORKER_DIR": str(tmp_path / "worker"),
        "PYSPARK_PYTHON": sys.executable,
    }
    url = f"spark://127.0.0.1:{port}"
    try:
        _daemon(env, "start", MASTER_CLASS, "1", "--host", "127.0.0.1", "--port", str(port), "--webui-port",
                str(ui_port))  # fmt: skip
        for n in range(1, workers + 1):
            _daemon(env, "start", WORKER_CLASS, str(n), "--host", "127.0.0.1", "--cores", str(cores), "--memory",
                    memory, "--webui-port", str(free_port()), url)  # fmt: skip
        deadline = time.monotonic() + 120
        while _alive_workers(ui_port) < workers:
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-1500:] for p in (tmp_path / "logs").glob("*.out"))
                raise RuntimeError(f"the standalone workers did not register:\n{logs}")
            time.sleep(1)
        yield url, env
    finally:
        for n in range(1, workers + 1):
            _daemon(env, "stop", WORKER_CLASS, str(n))
        _daemon(env, "stop", MASTER_CLASS, "1")
    assert not list((tmp_path / "pids").glob("*.pid")), "a daemon outlived its stop"


@pytest.fixture
def standalone_cluster(tmp_path):
    with _cluster(tmp_path, workers=1, cores=2, memory="6g") as cluster:
        yield cluster


def _submit(url: str, script: str, *args: str, conf: tuple[str, ...] = ()) -> list[str]:
    """spark-submit of ``jobs/SCRIPT`` with Delta, to ``url``."""
    delta = [
        "--packages", f"io.delta:delta-spark_2.13:{version('delta-spark')}",
        "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf", "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
    ]  # fmt: skip
    extra = [item for c in conf for item in ("--conf", c)]
    return [str(SPARK_HOME / "bin/spark-submit"), "--master", url, *delta, *extra, str(REPO / "jobs" / script), *args]


@pytest.mark.cluster
@pytest.mark.slow
def test_spark_submit_pipeline_on_a_standalone_cluster(standalone_cluster, corpus, tmp_path):
    from mlflow.tracking import MlflowClient

    url, env = standalone_cluster
    work = tmp_path / "work"
    cmd = _submit(url, "pipeline_job.py", "--input", str(corpus), "--work", str(work), "--epochs", "3",
                  "--set", "etl.vocab_size=1000", "--set", "train.local_mode=false",
                  conf=("spark.sql.shuffle.partitions=4", "spark.executor.memory=4g"))  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads((work / "report.json").read_text())
    rows = report["rows"]
    assert rows["read"] == rows["clean"] + rows["quarantined"] + rows["duplicates_exact"] == 2005
    assert report["validation"]["success"] is True
    assert report["training"]["metrics"]["test_accuracy"] > 0.8
    run = MlflowClient(f"sqlite:///{work / 'mlflow.db'}").get_run(report["training"]["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["spark_master"] == url
    assert run.data.params["train.local_mode"] == "False"
    assert "tokenlake: done" in out.stdout


@pytest.mark.cluster
def test_too_many_processes_for_the_cluster_fail_fast(standalone_cluster, tmp_path):
    """TorchDistributor would wait forever for 8 barrier slots on a 2-core worker."""
    url, env = standalone_cluster
    script = (
        "import sys; from pyspark.sql import SparkSession; "
        "from tokenlake.training.config import TrainConfig\n"
        "from tokenlake.training.launch import check_task_slots, TrainingFailed\n"
        f"spark = SparkSession.builder.master('{url}').config('spark.driver.host','127.0.0.1').getOrCreate()\n"
        "spark.range(4).count()\n"
        "try:\n check_task_slots(spark, TrainConfig(num_processes=8, local_mode=False))\n"
        "except TrainingFailed as e:\n print(e); sys.exit(0)\n"
        "sys.exit('no error')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "num_processes=8 exceeds the cluster's 2 task slots" in out.stdout


@pytest.mark.cluster
@pytest.mark.slow
def test_an_executor_killed_mid_etl_on_a_two_worker_cluster_loses_nothing(spark, corpus, tmp_path):
    """kill -9 of one of two executors while near duplicates are being found: the run completes
    with exact counts (Spark reruns the lost tasks; the clustering's checkpoints have a second
    copy), or fails with one line and no gold published."""
    import psutil

    from tokenlake.etl.lake import read_table

    work = tmp_path / "work"
    with _cluster(tmp_path, workers=2, cores=1, memory="3g") as (url, env):
        cmd = _submit(url, "etl_job.py", "--input", str(corpus), "--work", str(work), "--set", "etl.vocab_size=1000",
                      conf=("spark.sql.shuffle.partitions=4", "spark.executor.memory=2g"))  # fmt: skip
        err = tmp_path / "etl.log"  # spark-submit hands the Python driver's stderr to its stdout
        with err.open("wb") as sink:
            proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 600
            while "stage dedup_exact" not in err.read_text(errors="replace") and proc.poll() is None:
                assert time.monotonic() < deadline, err.read_text()[-3000:]
                time.sleep(0.05)
            executors = [p for p in psutil.process_iter(["cmdline", "cwd"])  # this cluster's: they run in its work dir
                         if any("CoarseGrainedExecutorBackend" in c for c in p.info["cmdline"] or [])
                         and (p.info["cwd"] or "").startswith(str(tmp_path / "worker"))]  # fmt: skip
            assert len(executors) == 2 and proc.poll() is None, (len(executors), err.read_text()[-3000:])
            executors[0].kill()
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode == 0:
        report = json.loads((work / "report.json").read_text())
        rows = report["rows"]
        assert (rows["read"], rows["clean"], rows["quarantined"], rows["duplicates_exact"]) == (2005, 2001, 3, 1)
        expected = {"bronze": 2003, "silver": 2001, "gold": 2001, "quarantine": 3}
        for name, table in report["tables"].items():
            assert read_table(spark, table["path"], table["version"]).count() == expected[name], name
    else:
        lines = [line for line in err.read_text().splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err.read_text()[-3000:]
        assert not (work / "lake" / "gold").exists()
