"""A class-data-sharing archive for the local Spark driver: the JVM of a local run maps the Spark,
Delta and Scala classes an ETL loads from one file instead of reading, parsing and verifying them
from the JARs each time (about 1.8 s of a session's start and 1.5-3.7 s of a 1 MB ETL in
``local[2]``: benchmarks/README.md, "The local driver's classes from one archive").

The archive is a JDK dynamic CDS archive (``-XX:ArchiveClassesAtExit``), built once per Java,
PySpark and package set by a JVM that runs a small ETL and writes it as it exits; ``get_spark``
gives a local session's driver ``-XX:SharedArchiveFile`` when one exists for its key. A JVM whose
classpath does not match the archive's ignores it and runs as without one (its warning is
silenced), so a stale archive costs speed, never a failure. A truncated one would crash the JVM
(SIGBUS while mapping it): an archive is used only at the size recorded beside it when it was
built (``driver-KEY.json``). Sessions that ``spark-submit`` or Databricks launch are left as
they are: their JVM options are the cluster's.

``python -m tokenlake.jobs.class_archive`` builds the archive if it is missing (``make run``,
``make test`` and ``make bench`` do) and prints its path; ``TOKENLAKE_CLASS_ARCHIVE=0`` turns its use off.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

USE = "-XX:SharedArchiveFile={} -Xlog:cds=off,cds+dynamic=off"
DUMP = "-XX:ArchiveClassesAtExit={} -Xlog:cds=off,cds+dynamic=off"


def directory() -> Path:
    return Path(os.environ.get("TOKENLAKE_CLASS_ARCHIVE_DIR") or Path.home() / ".cache" / "tokenlake" / "class-archive")


def _java() -> str:
    """The java binary spark-submit will run (``JAVA_HOME`` first, as Spark's launcher does)."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    return os.path.realpath(java) if java else ""


def key(packages: list[str]) -> str:
    """What the archive depends on: the JVM (its binary's path, size and time), PySpark's and
    Delta's versions (their JARs) and the other Maven packages added to the driver."""
    from importlib.metadata import version

    java = _java()
    stat = os.stat(java) if java else None
    jars = [version("pyspark"), version("delta-spark"), sorted(packages)]
    parts = [java, stat.st_size if stat else 0, int(stat.st_mtime) if stat else 0, *jars]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def path(packages: list[str]) -> Path:
    return directory() / f"driver-{key(packages)}.jsa"


def _record(archive: Path) -> Path:
    return archive.with_suffix(".json")


def usable(archive: Path) -> bool:
    """The archive is there, whole: at the size recorded when it was built."""
    try:
        recorded = json.loads(_record(archive).read_text())["bytes"]
        return archive.stat().st_size == recorded
    except (OSError, ValueError, KeyError, TypeError):
        return False


def java_options(packages: list[str]) -> str:
    """The driver's JVM options that map the archive for ``packages`` (empty when there is none
    whole, or with ``TOKENLAKE_CLASS_ARCHIVE=0``)."""
    if os.environ.get("TOKENLAKE_CLASS_ARCHIVE", "1") == "0":
        return ""
    archive = path(packages)
    return USE.format(archive) if usable(archive) else ""


def with_java_options(conf: dict[str, str], options: str) -> dict[str, str]:
    """``conf`` with ``options`` after the driver's own ``spark.driver.extraJavaOptions``."""
    if not options:
        return conf
    own = conf.get("spark.driver.extraJavaOptions", "")
    return {**conf, "spark.driver.extraJavaOptions": f"{own} {options}".strip()}


def build(packages: list[str] | None = None, *, docs: int = 300, timeout_s: int = 600) -> Path:
    """Build the archive for ``packages`` unless it exists: a child process runs an ETL of ``docs``
    generated documents with ``-XX:ArchiveClassesAtExit`` (its JVM writes the archive as it
    exits); the file is moved into place only once that process has ended, so no session ever
    maps a half-written one. Returns the archive's path."""
    packages = packages or []
    archive = path(packages)
    if usable(archive):
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tokenlake-class-archive-") as tmp:
        part = Path(tmp) / "driver.jsa"
        command = [sys.executable, "-m", "tokenlake.jobs.class_archive", "--dump", str(part), "--docs", str(docs),
                   *(f"--package={p}" for p in packages)]  # fmt: skip
        # the JVM inherits the child's stdout and stderr: reading them to their end waits for the
        # JVM's exit too, and so for the archive it writes as it exits
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not part.is_file():
            raise RuntimeError(f"the class archive was not written (exit {done.returncode}): {done.stderr[-2000:]}")
        _record(archive).unlink(missing_ok=True)  # the old archive, if any, is no longer whole from here
        shutil.move(str(part), archive.with_suffix(".part"))
        os.replace(archive.with_suffix(".part"), archive)
        record = archive.with_suffix(".json.part")
        record.write_text(json.dumps({"bytes": archive.stat().st_size}))
        os.replace(record, _record(archive))
    return archive


def _dump(out: str, docs: int, packages: list[str]) -> None:
    """In a fresh process: a local session whose JVM archives its classes to ``out`` at exit, and
    the classes an ETL loads (generate, ingest, clean, dedup, split, tokenize, Delta, GX)."""
    from tokenlake.etl.config import EtlConfig
    from tokenlake.etl.pipeline import run_etl
    from tokenlake.jobs.session import get_spark
    from tokenlake.synthetic.generate import generate_corpus

    os.environ["TOKENLAKE_CLASS_ARCHIVE"] = "0"  # this JVM writes the archive; it maps none
    spark = get_spark(
        "tokenlake-class-archive",
        master="local[2]",
        conf={"spark.driver.extraJavaOptions": DUMP.format(out)},
        packages=packages,
    )
    with tempfile.TemporaryDirectory(prefix="tokenlake-class-archive-etl-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        dirt = {"dup_rate": 0.03, "near_dup_rate": 0.03, "pii_rate": 0.1, "noise_rate": 0.1, "bad_rate": 0.01}
        generate_corpus(corpus, docs, seed=0, **dirt)  # every stage's paths: rejects, copies, PII
        run_etl(spark, str(corpus), Path(tmp) / "work", EtlConfig())
    spark.stop()


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m tokenlake.jobs.class_archive", description=__doc__.split("\n\n")[0])
    p.add_argument("--dump", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--docs", type=int, default=300, help=argparse.SUPPRESS)
    p.add_argument("--package", action="append", default=[], help="a Maven package the sessions add (as get_spark's)")
    args = p.parse_args()
    if args.dump:
        _dump(args.dump, args.docs, args.package)
    else:
        print(build(args.package, docs=args.docs))
