"""The local driver's class-data-sharing archive: built whole by a JVM that ran an ETL, mapped by
the next local session, and never used where it is missing, cut short or turned off."""

import json
import subprocess
import sys
import textwrap

import pytest

from tokenlake.jobs import class_archive


@pytest.fixture
def archive_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENLAKE_CLASS_ARCHIVE_DIR", str(tmp_path / "archives"))
    monkeypatch.delenv("TOKENLAKE_CLASS_ARCHIVE", raising=False)
    return tmp_path / "archives"


def test_only_a_whole_archive_of_the_same_jars_is_used(archive_dir, monkeypatch):
    assert class_archive.key([]) != class_archive.key(["org.apache.hadoop:hadoop-aws:3.4.1"])
    archive = class_archive.path([])
    assert class_archive.java_options([]) == ""  # none built
    archive_dir.mkdir()
    archive.write_bytes(b"x" * 1000)
    assert class_archive.java_options([]) == ""  # no record of its size: not known to be whole
    archive.with_suffix(".json").write_text(json.dumps({"bytes": 1000}))
    assert class_archive.java_options([]) == class_archive.USE.format(archive)
    assert class_archive.java_options(["org.apache.hadoop:hadoop-aws:3.4.1"]) == ""  # other jars, other key
    archive.write_bytes(b"x" * 999)  # cut short: mapping it would crash the JVM
    assert class_archive.java_options([]) == ""
    archive.write_bytes(b"x" * 1000)
    monkeypatch.setenv("TOKENLAKE_CLASS_ARCHIVE", "0")
    assert class_archive.java_options([]) == ""


def test_the_drivers_own_java_options_come_first():
    own = {"spark.driver.extraJavaOptions": "-Dmine=1", "spark.executor.memory": "1g"}
    assert class_archive.with_java_options(own, "-XX:SharedArchiveFile=/a.jsa") == {
        "spark.driver.extraJavaOptions": "-Dmine=1 -XX:SharedArchiveFile=/a.jsa",
        "spark.executor.memory": "1g",
    }
    assert class_archive.with_java_options({}, "-XX:X") == {"spark.driver.extraJavaOptions": "-XX:X"}
    assert class_archive.with_java_options(own, "") is own


def test_a_built_archive_is_mapped_by_the_next_local_session(archive_dir, tmp_path):
    archive = class_archive.build(docs=40)
    assert archive == class_archive.path([]) and class_archive.usable(archive)
    assert archive.stat().st_size > 10_000_000  # Spark's, Delta's and Scala's classes
    assert class_archive.build(docs=40) == archive  # built once: the second call finds it

    # a fresh process's session, its JVM logging where each class came from
    log = tmp_path / "classes.log"
    code = textwrap.dedent(f"""
        from tokenlake.jobs.session import get_spark
        spark = get_spark("archive-check", master="local[1]",
                          conf={{"spark.driver.extraJavaOptions": "-Xlog:class+load=info:file={log}"}})
        assert spark.range(3).count() == 3
        print(spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
        spark.stop()
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"-Xlog:class+load=info:file={log} -XX:SharedArchiveFile={archive}" in done.stdout
    loaded = log.read_text()
    assert "org.apache.spark.sql.SparkSession source: shared objects file (top)" in loaded
    assert "io.delta.sql.DeltaSparkSessionExtension source: shared objects file (top)" in loaded

    # a JVM with another class path (a stale archive) runs without it, silently
    options = class_archive.USE.format(archive).split()
    other = subprocess.run(["java", *options, "-version"], capture_output=True, text=True, timeout=60)
    assert other.returncode == 0 and "cds" not in other.stderr.lower()
