"""One local SparkSession (with Delta) for the whole test run: starting Spark costs ~15 s."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from jobs.session import get_spark

    warehouse = tmp_path_factory.mktemp("warehouse")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    session = get_spark("tokenlake-tests", master="local[2]", conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.warehouse.dir": str(warehouse),
    })
    yield session
    session.stop()
