"""One tokenlake ETL in a process of its own (so that its driver memory is its own):
``python -m benchmarks.etl_once --input C.jsonl --work DIR [--cores N]``."""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from benchmarks.measure import emit


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--cores", type=int, default=2)
    args = p.parse_args(argv)

    from etl.config import EtlConfig
    from etl.pipeline import run_etl
    from jobs.session import get_spark

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    spark = get_spark("tokenlake-bench-etl", master=f"local[{args.cores}]")
    start = time.perf_counter()
    result = run_etl(spark, args.input, work, EtlConfig())
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
    spark.stop()


if __name__ == "__main__":
    main()
