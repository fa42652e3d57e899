"""One tokenlake ETL in a process of its own: ``python -m tokenlake.benchmarks.etl_once --input C.jsonl
--work DIR [--cores N] [--keep] [--master local]`` (``--keep``: add to the lake in DIR instead of an empty one).
Spark runs as ``local-cluster``: a worker on this machine whose executor is a JVM of its own, so
that the driver (this process and its JVM) holds only what a driver on a real cluster holds, and
its memory can be measured apart from the executor's."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from tokenlake.benchmarks.measure import emit


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--executor-memory-mb", type=int, default=6144)
    p.add_argument("--keep", action="store_true", help="append to the lake in --work rather than start empty")
    p.add_argument(
        "--master",
        choices=("local-cluster", "local"),
        default="local-cluster",
        help="local: one JVM, driver and executor together (quicker to start; its RSS is not a driver's)",
    )
    args = p.parse_args(argv)

    from tokenlake.etl.config import EtlConfig
    from tokenlake.etl.pipeline import run_etl
    from tokenlake.jobs.session import get_spark

    work = Path(args.work).resolve()  # executors have working directories of their own
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    mem = args.executor_memory_mb
    master = f"local-cluster[1,{args.cores},{mem}]" if args.master == "local-cluster" else f"local[{args.cores}]"
    spark = get_spark(
        "tokenlake-bench-etl",
        master=master,
        conf={"spark.executor.memory": f"{mem}m", "spark.driver.memory": "2g"},
    )
    start = time.perf_counter()
    result = run_etl(spark, str(Path(args.input).resolve()), work, EtlConfig())
    seconds = time.perf_counter() - start
    emit(
        {
            "seconds": seconds,
            "rows": result.rows,
            "timings_s": result.timings_s,
            "tables": result.tables,
            "tokenizer_dir": result.tokenizer_dir,
            "vocab_size": result.vocab_size,
            "labels": result.labels,
        }
    )
    try:
        spark.stop()
    except Exception as exc:  # local-cluster executors race the shutdown; the result is out already
        print(f"spark.stop(): {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
