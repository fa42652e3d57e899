"""The benchmarks run and write every key (at a tiny size: these are not performance tests), and the
Spark-free gold reader that ``benchmarks/gpu.py`` uses agrees with Delta."""

import json
import math
import subprocess
import sys

import pytest

from tokenlake.benchmarks.run import TARGETS
from tokenlake.etl.lake import read_table, write_table
from tokenlake.training.gold_files import delta_files, load_gold

GOLD_SCHEMA = "id string, split string, input_ids array<int>, n_tokens int, label int"


def _gold(spark, path, rows):
    return write_table(spark.createDataFrame(rows, GOLD_SCHEMA), str(path))


def test_gold_files_follow_the_delta_log_per_version(spark, tmp_path):
    first = [(f"a{i}", "train", [5, 6, 7][: 1 + i % 3], 1 + i % 3, i % 2) for i in range(40)]
    second = [(f"b{i}", "train" if i % 4 else "test", [9] * (2 + i % 5), 2 + i % 5, i % 3) for i in range(25)]
    v0, v1 = _gold(spark, tmp_path / "gold", first), _gold(spark, tmp_path / "gold", second)
    assert (v0, v1) == (0, 1)
    for version, rows in ((0, first), (1, second), (None, second)):
        data = load_gold(tmp_path / "gold", version, max_len=8)
        assert data["input_ids"].shape == (len(rows), 8)
        assert sorted(data["n_tokens"].tolist()) == sorted(r[3] for r in rows)
        assert int(data["input_ids"].sum()) == sum(sum(r[2]) for r in rows)
        assert sorted(data["label"].tolist()) == sorted(r[4] for r in rows)
    assert read_table(spark, str(tmp_path / "gold"), 0).inputFiles() and len(delta_files(tmp_path / "gold", 0)) >= 1
    assert load_gold(tmp_path / "gold", 1, split="test")["input_ids"].shape[0] == sum(
        1 for r in second if r[1] == "test"
    )
    with pytest.raises(ValueError, match=r"versions 0\.\.1"):
        delta_files(tmp_path / "gold", 5)


def test_gpu_benchmark_runs_the_training_path_on_the_cpu_at_a_tiny_size(spark, tmp_path):
    splits = ("train", "train", "train", "validation", "test")
    rows = [(f"g{i}", splits[i % 5], list(range(1, 2 + i % 30)), 1 + i % 30, i % 4) for i in range(200)]
    _gold(spark, tmp_path / "gold", rows)
    from tokenlake.benchmarks.gpu import main as gpu_bench

    out = tmp_path / "gpu.json"  # in this process: its Spark session is the tests' one
    gpu_bench(["--gold", str(tmp_path / "gold"), "--models", "tiny", "--steps", "12", "--batch-size", "8",
               "--max-len", "32", "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    (tiny,) = result["models"]
    assert result["device"] == "cpu" and "TorchDistributor" in result["path"] and result["train_rows"] == 96
    assert tiny["precision"] == "fp32" and tiny["processes"] == 1 and tiny["steps"] == 12
    assert tiny["tokens_per_s"] > 0 and 0 < tiny["mfu"] < 1 and tiny["data_copy_bytes"] == 0 and tiny["startup_s"] > 0


def test_gpu_benchmark_runs_without_spark_as_on_a_machine_without_java(spark, tmp_path):
    """``--no-spark``: the path of a GPU machine with no Java, in a process that cannot import
    Spark, Petastorm or MLflow; each split cut to its first rows."""
    splits = ("train", "train", "train", "validation", "test")
    rows = [(f"g{i}", splits[i % 5], list(range(1, 2 + i % 30)), 1 + i % 30, i % 4) for i in range(200)]
    _gold(spark, tmp_path / "gold", rows)
    out = tmp_path / "gpu.json"
    argv = ["--no-spark", "--gold", str(tmp_path / "gold"), "--models", "tiny", "--steps", "12", "--batch-size", "8",
            "--max-len", "32", "--out", str(out)]  # fmt: skip
    blocked = "import sys\nfor m in ('pyspark', 'petastorm', 'mlflow'): sys.modules[m] = None\n"
    code = f"{blocked}from tokenlake.benchmarks.gpu import main\nmain({argv!r})"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    result = json.loads(out.read_text())
    (tiny,) = result["models"]
    assert result["device"] == "cpu" and result["path"] == "one process + gloo + gold files in memory (no Spark)"
    assert result["train_rows"] == 96
    assert tiny["steps"] == 12 and tiny["processes"] == 1 and tiny["batch_size"] == 8
    assert tiny["tokens_per_s"] > 0 and 0 < tiny["mfu"] < 1 and tiny["data_copy_bytes"] == 0 and tiny["startup_s"] > 0


def test_a_run_on_the_first_rows_of_gold_refuses_to_resume(tmp_path):
    from tokenlake.training.config import GoldData, TrainConfig
    from tokenlake.training.launch import TrainingFailed, train_without_spark

    data = GoldData(task="classification", labels=["0", "1"], vocab_size=10, max_len=8)
    with pytest.raises(TrainingFailed, match="cannot resume"):
        train_without_spark({"path": str(tmp_path), "version": 0}, tmp_path, TrainConfig(resume=True), data,
                            first_rows={"train": 8})  # fmt: skip


def test_a_steady_rate_counts_every_step_after_the_warm_up_by_its_time():
    from tokenlake.benchmarks.training import WARMUP_STEPS, steady_rate

    # after the warm-up, 15 steps at 100 samples/s and one that waits on the reader at 10
    steps = (
        [{"samples_per_s": 1.0, "tokens_per_s": 1.0}] * WARMUP_STEPS
        + [{"samples_per_s": 100.0, "tokens_per_s": 1000.0}] * 15
        + [{"samples_per_s": 10.0, "tokens_per_s": 500.0}]
    )
    # 16 batches in 15 / 100 + 1 / 10 = 0.25 batch-seconds: 64 / s, where a median says 100
    assert steady_rate(steps) == pytest.approx(16 / 0.25)
    assert steady_rate(steps, "tokens_per_s") == pytest.approx((15 * 1000 / 100 + 500 / 10) / 0.25)
    assert steady_rate(steps[:3]) == pytest.approx(1.0)  # fewer steps than the warm-up: all of them


def test_a_bench_corpus_leaves_only_itself_and_its_truth(tmp_path):
    """Its size comes from a probe corpus, which is removed with its ground truth."""
    from tokenlake.benchmarks.measure import make_corpus

    path = make_corpus(tmp_path / "corpus.jsonl", 0.05, seed=3, kind="web")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "corpus.truth.jsonl"]
    assert len(path.read_bytes().splitlines()) >= 200


def test_a_local_session_can_be_given_the_drivers_gpus():
    """TorchDistributor's local mode with use_gpu asks Spark which GPUs the driver owns."""
    from tokenlake.jobs.session import driver_gpu_settings

    settings = driver_gpu_settings(2)
    assert settings["spark.driver.resource.gpu.amount"] == "2"
    printed = subprocess.run([settings["spark.driver.resource.gpu.discoveryScript"]], capture_output=True, text=True)
    assert json.loads(printed.stdout) == {"name": "gpu", "addresses": ["0", "1"]}


@pytest.mark.slow
def test_make_bench_writes_every_key_at_a_tiny_size(tmp_path):
    out = tmp_path / "latest.json"
    subprocess.run(
        [sys.executable, "-m", "tokenlake.benchmarks.run", "--mb", "0.4", "--repeats", "1", "--loader-rows", "2000",
         "--train-steps", "4", "--append-mb", "0.05", "--predict-rows", "200",
         "--etl-master", "local",  # one JVM per ETL: quicker
         "--work", str(tmp_path / "work"), "--out", str(out)],
        check=True,
        timeout=900,
        cwd=tmp_path,  # not the repository: the datatrove peer finds its module from anywhere
    )  # fmt: skip
    result = json.loads(out.read_text())
    for key in TARGETS:
        assert isinstance(result[key], float) and math.isfinite(result[key]) and result[key] > 0, key
        assert key in result["targets"]
    assert result["machine"]["cores"] >= 1 and result["machine"]["versions"]["pyspark"]
    raw = result["raw"]
    assert raw["tokenize"]["tokens"] > 0 and len(raw["datatrove"]) == 1 and raw["datatrove"][0]["docs_in"] > 0
    assert raw["corpus"] == "web" and raw["append"]["fixed_cost_s"] > 0
    (appended,) = raw["append"]["append"]
    assert appended["tables"]["gold"]["mode"] == "append"  # the small file grew the 4x lake's gold
    assert appended["tables"]["gold"]["rows_tokenized"] == appended["rows"]["new"]
    assert raw["scale"]["driver_peak_rss_bytes_1x"] > 0 and raw["etl"]["4x"][0]["rows"]["read"] > 0
    assert 0 < result["padding_real_token_fraction"] <= result["bucketing_real_token_fraction"] <= 1


def test_the_driver_is_counted_once_not_again_in_a_child_that_is_still_its_copy():
    """A forked child that has not exec'd shares its parent's pages and reports its whole RSS (the
    helper the JVM spawns for each shell command Hadoop runs): the driver's memory counts it
    once, in the parent. A child running a program of its own counts."""
    import os
    import signal
    import time

    import psutil

    from tokenlake.benchmarks.measure import _driver_processes

    copy = os.fork()
    if copy == 0:  # the copy: sleeps until killed, never returns into pytest
        try:
            time.sleep(60)
        finally:
            os._exit(0)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = psutil.Process()
        deadline = time.monotonic() + 10
        while psutil.Process(other.pid).cmdline() == me.cmdline() and time.monotonic() < deadline:
            time.sleep(0.01)  # until it has exec'd
        counted = {p.pid for p in _driver_processes(me)}
        assert os.getpid() in counted and other.pid in counted
        assert copy not in counted
    finally:
        os.kill(copy, signal.SIGKILL)
        os.waitpid(copy, 0)
        other.kill()
        other.wait()
