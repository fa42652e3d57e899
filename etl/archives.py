"""Readers of files that hold documents in their own format: web archives (``.warc``,
``.warc.gz``), HTML pages (``.html``, ``.htm``), e-mail (``.eml``: one message; ``.mbox``: many).

Each file is streamed by one Python task (a web archive record by record, an mbox message by
message: never a whole archive in memory) and every record it holds becomes one JSON record for
``etl.ingest.parse_records``, already decoded (``etl.formats``), or a record with a reject reason:

- a WARC ``response`` record with an HTML payload is a page: its main content is the text, its
  record id the id, its URL, crawl date, HTTP status and content type go to ``meta``; any other
  record (a request, metadata, a PDF or an image) is ``not_html``, kept as its type, content type
  and URL;
- a message is its body with its subject, sender domain and date in ``meta``; one that cannot be
  parsed is ``unparseable_email``;
- a file whose content cannot be read on (a truncated archive) adds one ``unreadable_file`` record
  after the records read before the damage.

An mbox is split at every line that starts with ``From `` (as Python's ``mailbox`` does) and lines
of ``>From `` escaping are unescaped once (mboxrd).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import json
import zlib
from collections.abc import Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from tokenlake.etl.formats import (
    UNPARSEABLE_EMAIL,
    UnparseableEmail,
    email_document,
    html_of_bytes,
    html_text,
    is_html,
    parse_message,
)
from tokenlake.etl.lake import error_cause
from tokenlake.etl.reasons import reason

NOT_HTML = reason("not_html")
UNREADABLE_FILE = reason("unreadable_file")
KINDS = ("warc", "html", "eml", "mbox")
_BATCH = 256
_SCHEMA = pa.schema(
    [
        ("raw", pa.string()),
        ("source_file", pa.string()),
        ("pre_reason", pa.string()),
        ("_block", pa.int64()),
        ("_decoded", pa.bool_()),
    ]
)
_RAW_CHARS = 100_000  # of an unparseable message: the quarantine keeps less (etl.raw_keep_chars)

Record = tuple[str, "str | None"]


def _record(fields: dict) -> Record:
    return json.dumps(fields, ensure_ascii=False), None


class DamagedFile(ValueError):
    """A file whose content breaks off or cannot be parsed on."""


def warc_records(stream, *, text_column: str = "text", id_column: str = "id") -> Iterator[Record]:
    """One record per WARC record of ``stream`` (uncompressed: ``path_records`` decompresses a
    ``.warc.gz`` with Python's gzip, which, unlike warcio's reader, fails on a truncated member)."""
    from warcio.archiveiterator import ArchiveIterator

    records = iter(ArchiveIterator(stream))
    while True:
        try:
            rec = next(records)
        except StopIteration:
            return
        except (EOFError, zlib.error, gzip.BadGzipFile):
            raise
        except Exception as exc:  # warcio's own errors, and what a malformed header makes it raise
            raise DamagedFile(f"a WARC record cannot be parsed ({type(exc).__name__}: {exc})") from exc
        yield _warc_record(rec, text_column, id_column)
        while rec.raw_stream.read(1 << 16):  # the rest of the record (what warcio would skip)
            pass
        if rec.raw_stream.limit:
            raise DamagedFile(f"the record at {rec.rec_headers.get_header('WARC-Target-URI')} breaks off")


def _warc_record(rec, text_column: str, id_column: str) -> Record:
    headers, http = rec.rec_headers, rec.http_headers
    url = headers.get_header("WARC-Target-URI")
    content_type = http.get_header("Content-Type") if http is not None else rec.content_type
    if rec.rec_type != "response" or http is None or not is_html(content_type):
        kept = {"warc_type": rec.rec_type, "content_type": content_type, "url": url}
        return json.dumps(kept, ensure_ascii=False), NOT_HTML
    page = html_of_bytes(rec.content_stream().read(), content_type)
    return _record(
        {
            text_column: html_text(page),
            id_column: headers.get_header("WARC-Record-ID"),
            "url": url,
            "crawl_date": headers.get_header("WARC-Date"),
            "http_status": http.get_statuscode(),
            "content_type": content_type,
        }
    )


def mbox_messages(stream) -> Iterator[bytes]:
    """The messages of an mbox, each without its ``From `` line; text before the first one (not
    an mbox's) is yielded as a message of its own if it is not blank."""
    lines: list[bytes] = []
    started = False
    for line in stream:
        if line.startswith(b"From "):
            if lines and (started or b"".join(lines).strip()):
                yield b"".join(lines)
            lines, started = [], True
            continue
        if line.startswith(b">") and line.lstrip(b">").startswith(b"From "):
            line = line[1:]
        lines.append(line)
    if lines and (started or b"".join(lines).strip()):
        yield b"".join(lines)


def email_record(data: bytes, *, text_column: str = "text") -> Record:
    try:
        doc = email_document(parse_message(data))
    except UnparseableEmail:
        return data[:_RAW_CHARS].decode("utf-8", errors="replace"), UNPARSEABLE_EMAIL
    return _record({text_column: doc.text, **doc.meta})


def file_records(stream, kind: str, *, text_column: str = "text", id_column: str = "id") -> Iterator[Record]:
    """Every record of one file of ``kind`` (one of ``KINDS``)."""
    if kind == "warc":
        yield from warc_records(stream, text_column=text_column, id_column=id_column)
    elif kind == "mbox":
        for message in mbox_messages(stream):
            yield email_record(message, text_column=text_column)
    elif kind == "eml":
        yield email_record(stream.read(), text_column=text_column)
    elif kind == "html":
        yield _record({text_column: html_text(html_of_bytes(stream.read()))})
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _content_errors() -> tuple[type[BaseException], ...]:
    """What a damaged file raises while it is read: its content, not the storage."""
    from warcio.exceptions import ArchiveLoadFailed

    return (ArchiveLoadFailed, DamagedFile, gzip.BadGzipFile, EOFError, zlib.error)


def _open(path: str, files: contextlib.ExitStack):
    """The file at ``path`` as a binary stream, decompressed by its suffix; ``files`` closes it
    and the file under it."""
    from tokenlake.etl.storage import filesystem

    fs, where = filesystem(path)
    raw = files.enter_context(fs.open(where, "rb"))
    if where.endswith(".gz"):
        return files.enter_context(gzip.GzipFile(fileobj=raw))
    if where.endswith(".bz2"):
        return files.enter_context(bz2.BZ2File(raw))
    return raw


def path_records(path: str, kind: str, *, text_column: str, id_column: str) -> Iterator[Record]:
    """``file_records`` of the file at ``path`` (any file system ``etl.storage`` reaches),
    ending with one ``unreadable_file`` record if its content breaks off."""
    with contextlib.ExitStack() as files:
        stream = _open(path, files)
        try:
            yield from file_records(stream, kind, text_column=text_column, id_column=id_column)
        except _content_errors() as exc:
            yield f"{type(exc).__name__}: {error_cause(exc)}", UNREADABLE_FILE  # as etl.sources words it


def read_documents(
    spark: SparkSession, files: list[str], *, kind: str, text_column: str = "text", id_column: str = "id"
) -> DataFrame:
    """The records of ``files`` (all of ``kind``) as ``raw, source_file, pre_reason, _block,
    _decoded`` (true: ``etl.text_format`` is not for them).

    A file is read whole by one task, so its records are consecutive in one partition. There is a
    task per file up to eight per core; beyond that the files are dealt out in as many tasks (a
    maildir of 50,000 messages is not 50,000 tasks)."""
    sc = spark.sparkContext
    slices = min(len(files), 8 * sc.defaultParallelism)
    paths = spark.createDataFrame(sc.parallelize([(f,) for f in files], slices), "path string")

    def read(batches):
        rows: list[tuple] = []
        for batch in batches:
            for path in batch.column(0).to_pylist():
                for raw, pre_reason in path_records(path, kind, text_column=text_column, id_column=id_column):
                    rows.append((raw, path, pre_reason, 0, True))
                    if len(rows) == _BATCH:
                        yield _batch(rows)
                        rows = []
        if rows:
            yield _batch(rows)

    return paths.mapInArrow(read, "raw string, source_file string, pre_reason string, _block long, _decoded boolean")


def _batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(c, type=f.type) for c, f in zip(columns, _SCHEMA, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=_SCHEMA)
