import json
import shutil
from functools import partial

import pytest

from tokenlake.etl.lake import table_digest


def test_digest_ignores_order_and_partitioning_but_sees_any_change(spark):
    rows = [("a", [1, 2], 1), ("b", [3], 0), ("c", [4, 5, 6], 1)]
    schema = "id string, input_ids array<int>, label int"
    base = table_digest(spark.createDataFrame(rows, schema))
    assert base.startswith("3:")
    assert table_digest(spark.createDataFrame(rows[::-1], schema).repartition(3)) == base
    assert table_digest(spark.createDataFrame([("a", [1, 2], 0), *rows[1:]], schema)) != base  # a changed value
    assert table_digest(spark.createDataFrame(rows[:2], schema)) != base  # a lost row
    assert table_digest(spark.createDataFrame([*rows, rows[0]], schema)) != base  # a duplicated row


def test_a_tables_history_starts_from_the_checkpoint_where_older_commits_were_cleaned_up(tmp_path):
    """``tokenlake tables`` without Spark: the live files of checkpoint 10 (Parquet), then commit 11."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenlake.jobs.overview import table_history

    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    stats = [json.dumps({"numRecords": n}) for n in (5, 7)]
    adds = pa.array([{"path": "a.parquet", "stats": stats[0]}, None, {"path": "b.parquet", "stats": stats[1]}])
    pq.write_table(pa.table({"add": adds}), log / f"{10:020d}.checkpoint.parquet")
    commit = [{"remove": {"path": "a.parquet"}}, {"add": {"path": "c.parquet", "stats": json.dumps({"numRecords": 2})}},
              {"commitInfo": {"timestamp": 0, "operation": "WRITE"}}]  # fmt: skip
    (log / f"{11:020d}.json").write_text("\n".join(json.dumps(a) for a in commit))
    assert table_history(str(tmp_path / "t")) == [
        {"version": 11, "timestamp": "1970-01-01T00:00:00+00:00", "operation": "WRITE", "rows": 9}
    ]


def test_a_pinned_read_and_what_is_cached_on_it_keep_the_version_the_run_found(spark, tmp_path):
    """The ETL reads the stored tables pinned (``read_pinned``): its MERGE into a table must not
    re-plan, or recompute, what it cached on the table before (an unpinned read did both)."""
    from pyspark.sql import functions as F

    from tokenlake.etl.lake import merge_new, read_pinned, read_table, write_table

    path = str(tmp_path / "t")
    assert read_pinned(spark, path) is None
    write_table(spark.createDataFrame([("a", 1), ("b", 2)], "id string, n int"), path)
    stored, version = read_pinned(spark, path)
    assert version == 0
    new = spark.createDataFrame([("b", 2), ("c", 3)], "id string, n int")
    # rows the table does not hold, computed from the stored table and cached, as ingest does
    fresh = new.join(stored.select("id"), "id", "left_anti").persist()
    assert [r.id for r in fresh.collect()] == ["c"]
    assert merge_new(fresh, path, key="id") == (1, 1)
    assert stored.count() == 2 and read_table(spark, path).count() == 3
    assert [r.id for r in fresh.collect()] == ["c"]  # an unpinned read gives [] here: c is stored now
    assert fresh.agg(F.sum("n")).first()[0] == 3
    fresh.unpersist()


def test_versions_and_commit_metadata_come_from_the_log_as_delta_reports_them(spark, tmp_path):
    """``latest_version`` and ``commit_metadata`` list and read the log themselves (no snapshot, no
    history job): they must agree with Delta's own history, past a checkpoint and an empty dir."""
    from delta.tables import DeltaTable

    from tokenlake.etl.lake import commit_metadata, latest_version, merge_new, table_exists, write_table
    from tokenlake.training import gold_files

    path = str(tmp_path / "t")
    (tmp_path / "t").mkdir()
    assert not table_exists(spark, path)  # a directory is not a table
    df = spark.createDataFrame([("a", 1)], "id string, n int")
    assert write_table(df, path, metadata={"run": 0}) == 0
    for n in range(1, 12):  # past Delta's checkpoint at version 10
        merge_new(spark.createDataFrame([(f"k{n}", n)], "id string, n int"), path, key="id", metadata={"run": n})
    merge_new(spark.createDataFrame([("k12", 12)], "id string, n int"), path, key="id")  # no metadata
    history = DeltaTable.forPath(spark, path).history().select("version", "userMetadata").collect()
    assert (tmp_path / "t" / "_delta_log" / f"{10:020d}.checkpoint.parquet").exists()
    assert table_exists(spark, path) and latest_version(spark, path) == max(r.version for r in history) == 12
    for r in history:
        expected = json.loads(r.userMetadata) if r.userMetadata else {}
        assert commit_metadata(spark, path, r.version) == expected
        assert gold_files.commit_metadata(path, r.version) == expected  # the reader without Spark
    for read in (partial(commit_metadata, spark), gold_files.commit_metadata):
        with pytest.raises(ValueError, match="no version 13"):
            read(path, 13)
    pruned = tmp_path / "pruned"  # as Delta's log clean-up leaves it: early commits gone
    shutil.copytree(tmp_path / "t", pruned)
    (pruned / "_delta_log" / f"{0:020d}.json").unlink()
    assert gold_files.commit_metadata(str(pruned), 11) == {"run": 11}
    with pytest.raises(FileNotFoundError, match="not a Delta table"):
        latest_version(spark, str(tmp_path / "none"))
