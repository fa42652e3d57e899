"""One local SparkSession (with Delta) for the whole test run (starting Spark costs ~15 s), the
corpus and work dir the stage tests share, and helpers for the tests that tamper with them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from tokenlake.jobs.session import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    session = get_spark(
        "tokenlake-tests",
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.sql.warehouse.dir": str(warehouse),
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """2,000 generated documents, three bad lines (one per reject reason), one exact duplicate of
    the first document's text under another id, and one document with an e-mail and a card number."""
    import json

    from tokenlake.synthetic.generate import generate_corpus

    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    generate_corpus(path, 2000, seed=7)
    with path.open("ab") as fh:
        fh.write(
            b'{"id": "bad-1", "text": "unterminated\n{"id": "bad-2", "text": 42, "label": "food"}\n'
            b'{"id": "bad-3", "text": " \\u0007 ", "label": "food"}\n'
        )
        first = json.loads(path.read_text().splitlines()[0])
        fh.write(json.dumps({"id": "zz-duplicate", "text": first["text"], "label": first["label"]}).encode() + b"\n")
        fh.write(
            b'{"id": "pii-1", "text": "Bank loan: mail jo.doe@example.com, card 4111 1111 1111 1111.", '
            b'"label": "finance"}\n'
        )
    return path


@pytest.fixture(scope="session")
def etl_work(spark, corpus, tmp_path_factory):
    """``tokenlake etl`` of ``corpus`` (vocabulary 1,000), for tests that read it (copy it to tamper)."""
    from tokenlake.jobs.cli import main

    work = tmp_path_factory.mktemp("stages") / "work"
    assert main(["etl", "--input", str(corpus), "--work", str(work), "--set", "etl.vocab_size=1000"]) == 0
    return work


@pytest.fixture(scope="session")
def minilm_work(spark, tmp_path_factory) -> Path:
    """``tokenlake run`` of 600 generated documents warm-starting MiniLM for one epoch (its own
    tokenizer, 64 tokens), for tests that read it (copy it to train again)."""
    from tokenlake.jobs.cli import main
    from tokenlake.synthetic.generate import generate_corpus

    where = tmp_path_factory.mktemp("minilm")
    corpus = generate_corpus(where / "docs.jsonl", 600, seed=11)
    work = where / "work"
    flags = ["--model", "minilm", "--epochs", "1", "--batch-size", "32", "--max-len", "64"]
    flags += ["--set", "train.baseline=false"]
    assert main(["run", "--input", str(corpus), "--work", str(work), *flags]) == 0
    return work


@pytest.fixture
def work_copy(etl_work, tmp_path) -> Path:
    """A private copy of the ETL's work dir, for tests that tamper with it."""
    return Path(shutil.copytree(etl_work, tmp_path / "work"))


def gold_data(spark, work):
    """The report's gold version, and what its commit defines for the model."""
    from tokenlake.etl.gold import GoldCommit
    from tokenlake.etl.lake import commit_metadata
    from tokenlake.training.config import GoldData

    gold = json.loads((work / "report.json").read_text())["tables"]["gold"]
    return gold, GoldData.of_commit(GoldCommit.parse(commit_metadata(spark, gold["path"], gold["version"])))


def append_unvalidated_gold(spark, work: Path) -> int:
    """A gold version written behind the gate: same rows, no validation in its commit."""
    from tokenlake.etl.lake import read_table, write_table

    gold = str(work / "lake/gold")
    return write_table(read_table(spark, gold, 0).limit(50), gold, mode="append")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_at_a_mid_epoch_checkpoint(proc, checkpoints, *, timeout_s: float, poll_s: float) -> dict | None:
    """Wait until ``proc`` (the leader of its process group) has written a checkpoint inside an
    epoch under ``checkpoints`` (a path or a URI), then kill -9 the whole group; return that
    checkpoint's position (None if none came in ``timeout_s``)."""
    import signal
    import time

    from tokenlake.training import checkpoint

    seen, deadline = None, time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            found = checkpoint.latest(checkpoints)
            if found and checkpoint.position(found)["step"] > 0:
                seen = checkpoint.position(found)
                break
            time.sleep(poll_s)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return seen
