import bz2
import gzip
import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from tokenlake.etl.ingest import parse_records
from tokenlake.etl.sources import file_format, read_sources


def test_format_comes_from_the_name_compression_suffix_ignored():
    assert [
        file_format(p) for p in ("a.jsonl", "a.JSON.gz", "b.csv.bz2", "c.tsv", "d.parquet", "e.txt.gz", "f.md")
    ] == ["json", "json", "csv", "tsv", "parquet", "text", "text"]
    assert file_format("s3://bucket/x.log") == "json" and file_format("noext") == "json"


def _corpus(root):
    (root / "nested").mkdir(parents=True)
    with gzip.open(root / "a.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": "j1", "text": "json in gzip", "label": "x", "lang": "en", "n": 3}) + "\n")
        fh.write('{"id": "j2", "text": oops}\n')
    (root / "b.csv").write_text('id,text,label,source\nc1,"two\nlines, quoted",y,web\nc2,plain,y,\n')
    (root / "bad.csv").write_text('id,text,label\nc3,"never closed,y\nc4,lost,y\n')
    pq.write_table(
        pa.table({"id": ["p1"], "text": ["from parquet"], "label": ["z"], "score": [0.5]}), root / "c.parquet"
    )
    pq.write_table(pa.table({"doc": ["p2"], "text": [7], "label": ["z"]}), root / "nested" / "other.parquet")
    (root / "nested" / "fake.parquet").write_text("not parquet at all")
    (root / "d.txt").write_text("a plain text document\nover two lines\n")
    (root / "nested" / "e.txt.bz2").write_bytes(bz2.compress(b"compressed text file"))
    (root / "empty.jsonl").write_text("")
    (root / "_SUCCESS").write_text("")  # hidden marker files are skipped


def test_every_format_becomes_records_with_reasons(spark, tmp_path):
    _corpus(tmp_path)
    rows = parse_records(read_sources(spark, str(tmp_path)), require_label=False).collect()
    by_file = {}
    for r in rows:
        by_file.setdefault(r["source_file"].rsplit("/", 1)[-1], []).append(r)
    assert sorted(by_file) == [
        "a.jsonl.gz",
        "b.csv",
        "bad.csv",
        "c.parquet",
        "d.txt",
        "e.txt.bz2",
        "fake.parquet",
        "other.parquet",
    ]
    good = {r["id"]: (r["text"], r["label"], dict(r["meta"] or {})) for r in rows if r["reject_reason"] is None}
    text_id = hashlib.sha256(b"a plain text document\nover two lines\n").hexdigest()
    assert good == {
        "j1": ("json in gzip", "x", {"lang": "en", "n": "3"}),
        "c1": ("two\nlines, quoted", "y", {"source": "web"}),
        "c2": ("plain", "y", {}),
        "p1": ("from parquet", "z", {"score": "0.5"}),
        text_id: ("a plain text document\nover two lines\n", None, {}),
        hashlib.sha256(b"compressed text file").hexdigest(): ("compressed text file", None, {}),
    }
    rejects = sorted((r["source_file"].rsplit("/", 1)[-1], r["reject_reason"]) for r in rows if r["reject_reason"])
    assert rejects == [
        ("a.jsonl.gz", "malformed_json"),
        ("bad.csv", "malformed_csv"),  # an unbalanced quote runs to the end of the file: one record
        ("fake.parquet", "unreadable_file"),
        ("other.parquet", "text_not_string"),  # its own schema: read, then rejected for its text type
    ]
    fake = next(r for r in rows if r["reject_reason"] == "unreadable_file")
    assert "fake.parquet" in fake["source_file"] and fake["raw"]


def test_globs_and_comma_separated_paths(spark, tmp_path):
    _corpus(tmp_path)
    df = read_sources(spark, f"{tmp_path}/*.csv,{tmp_path}/d.txt")
    files = sorted({r["source_file"].rsplit("/", 1)[-1] for r in df.collect()})
    assert files == ["b.csv", "bad.csv", "d.txt"]


def test_missing_input_is_a_clear_error(spark, tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no input files"):
        read_sources(spark, str(tmp_path / "nothing-*.jsonl"))


def test_source_lines_keep_the_rows_where_they_are(spark, tmp_path):
    """Lines are numbered with a broadcast look-up of each file split's start, never by shuffling
    the rows on their (file, split): a key with a few values would put them all in one partition,
    and every later stage on one core."""
    from pyspark import StorageLevel

    from tokenlake.etl.sources import with_source_line

    path = tmp_path / "one.jsonl"
    path.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(4000)))
    records = read_sources(spark, str(path)).repartition(4).persist(StorageLevel.MEMORY_AND_DISK)
    located = with_source_line(records)
    sizes = located.rdd.glom().map(len).collect()
    assert sorted(sizes) == sorted(records.rdd.glom().map(len).collect()) and min(sizes) > 0
    assert sorted(r["source_line"] for r in located.select("source_line").collect()) == list(range(4000))
    records.unpersist()


def test_an_outage_while_reading_a_file_fails_the_run_instead_of_quarantining_it(spark, tmp_path, monkeypatch):
    """Only a file whose content is bad is an ``unreadable_file`` row; a failure to read it (here
    the JVM connection, as Py4J reports it) is not bad data and must not pass as such."""
    import pytest
    from py4j.protocol import Py4JNetworkError
    from pyspark.sql.readwriter import DataFrameReader

    from tokenlake.etl.sources import SourceReadFailed

    pq.write_table(pa.table({"id": ["p1"], "text": ["fine"], "label": ["z"]}), tmp_path / "good.parquet")
    (tmp_path / "fake.parquet").write_text("not parquet at all")
    rows = read_sources(spark, str(tmp_path)).collect()  # bad content: quarantined, with its cause
    fake = next(r for r in rows if r["pre_reason"] == "unreadable_file")
    assert "is not a Parquet file" in fake["raw"]
    real = DataFrameReader.parquet

    def flaky(self, *paths, **options):
        if any(str(p).endswith("good.parquet") for p in paths):
            raise Py4JNetworkError("An error occurred while trying to connect to the Java server")
        return real(self, *paths, **options)

    monkeypatch.setattr(DataFrameReader, "parquet", flaky)
    with pytest.raises(SourceReadFailed, match=r"could not read .*good\.parquet .*nothing was quarantined"):
        read_sources(spark, str(tmp_path))
