"""``tokenlake``: the command line. Subcommands call the same functions as the jobs.

    tokenlake generate --out data/sample.jsonl --docs 4000 --seed 0
    tokenlake run --input data/sample.jsonl --work work
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

EXIT_FAILED, EXIT_VALIDATION, EXIT_INPUT, EXIT_DELTA, EXIT_TRAINING = 1, 3, 4, 5, 6


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``tokenlake run`` (``jobs/pipeline_job.py`` takes the same)."""
    p.add_argument("--input", required=True, help="JSON Lines file, directory or glob")
    p.add_argument("--work", default="work", help="work directory: lake/, tokenizer/, model/, report.json")
    p.add_argument("--config", help="YAML file with etl: and train: sections")
    p.add_argument("--model", help="model size: tiny, small, base")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-len", type=int, help="tokens per document, special tokens included")
    p.add_argument("--batch-size", type=int, help="samples per rank per step")
    p.add_argument("--num-processes", type=int, help="DDP processes")
    p.add_argument("--mlflow-uri", help="tracking URI (default: sqlite:///WORK/mlflow.db)")
    p.add_argument("--master", help="Spark master for a local run (default local[*]; ignored under spark-submit)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config field, e.g. --set etl.vocab_size=4000 --set train.lr=5e-4")


def config_from_args(args: argparse.Namespace):
    from jobs.config import load_config

    return load_config(args.config, args.set, {
        "train.model": args.model, "train.epochs": args.epochs, "etl.max_len": args.max_len,
        "train.batch_size": args.batch_size, "train.num_processes": args.num_processes})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenlake", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a deterministic labelled JSONL corpus")
    gen.add_argument("--out", required=True)
    gen.add_argument("--docs", type=int, default=4000)
    gen.add_argument("--seed", type=int, default=0)
    add_run_flags(sub.add_parser("run", help="ETL, validation, training and tracking, end to end"))
    return parser


def run_command(args: argparse.Namespace) -> int:
    """``tokenlake run``: returns the process exit code; every failure is one clear line."""
    from etl.validate import ValidationFailed
    from jobs.runner import run_pipeline
    from jobs.session import DeltaJarsMissing, get_spark
    from jobs.summary import print_summary
    from training.launch import TrainingFailed

    try:
        cfg = config_from_args(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: bad configuration: {exc}", file=sys.stderr)
        return 2
    if not _input_exists(args.input):
        print(f"error: input not found: {args.input}", file=sys.stderr)
        return EXIT_INPUT
    try:
        spark = get_spark("tokenlake", master=args.master)
        report = run_pipeline(spark, args.input, Path(args.work), cfg, args.mlflow_uri)
    except DeltaJarsMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DELTA
    except ValidationFailed as exc:
        print(f"error: {exc}; no training was started", file=sys.stderr)
        return EXIT_VALIDATION
    except TrainingFailed as exc:
        print(f"error: training failed: {exc}", file=sys.stderr)
        return EXIT_TRAINING
    print_summary(report, Path(args.work))
    return 0


def _input_exists(path: str) -> bool:
    import glob

    return bool(glob.glob(path)) or "://" in path


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("TOKENLAKE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("py4j", "great_expectations", "petastorm", "mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        from etl.generate import generate_corpus

        print(generate_corpus(args.out, args.docs, args.seed))
        return 0
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
