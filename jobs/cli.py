"""``tokenlake``: the command line. Subcommands call the same functions as ``jobs/*_job.py``.

tokenlake generate --out data/sample.jsonl --docs 4000 --seed 0
tokenlake run --input data/sample.jsonl --work work        # = etl, then train, one MLflow run
tokenlake etl --input data/sample.jsonl --work work
tokenlake run --input unlabelled.jsonl --task causal-lm    # GPT-2-style LM on packed blocks
tokenlake validate --work work [--data-version N]
tokenlake train --work work [--data-version N]
tokenlake train --work work --no-spark                     # no Spark/Java; torchrun ... -m jobs.cli for DDP
tokenlake ui --work work                                   # MLflow UI on 127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import sys
import warnings
from pathlib import Path

from etl.config import Task

EXIT_CONFIG, EXIT_VALIDATION, EXIT_INPUT, EXIT_DELTA, EXIT_TRAINING, EXIT_BUSY = 2, 3, 4, 5, 6, 7


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--work",
        default="work",
        help="work directory: lake/, tokenizer/, checkpoints/, model/, report.json; a path or a URI "
        "(s3a://bucket/prefix, hdfs://...; S3 credentials and endpoint from the AWS_* variables)",
    )
    p.add_argument("--config", help="YAML file with etl: and train: sections")
    p.add_argument("--master", help="Spark master for a local run (default local[*]; ignored under spark-submit)")
    p.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting, e.g. --conf spark.sql.shuffle.partitions=64 (under spark-submit: runtime ones only)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config field, e.g. --set etl.vocab_size=4000 --set train.lr=5e-4",
    )


def _etl_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input",
        required=True,
        help="file, directory or glob (comma-separated for several): JSON Lines, CSV/TSV, Parquet, .txt; .gz/.bz2 too",
    )
    p.add_argument("--max-len", type=int, help="tokens per document, special tokens included")
    p.add_argument(
        "--task",
        choices=tuple(Task),
        help="classification (labelled docs, truncated) or causal-lm (unlabelled, packed blocks)",
    )
    p.add_argument(
        "--rebuild-gold",
        action="store_true",
        default=None,
        help="re-tokenize all of silver into gold even where gold could grow by the new rows alone",
    )


def _train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model size: tiny, small, base")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="samples per rank per step")
    p.add_argument("--num-processes", type=int, help="DDP processes")
    p.add_argument(
        "--local-mode",
        action=argparse.BooleanOptionalAction,
        help="TorchDistributor processes on the driver (default) or, with --no-local-mode, in executor tasks",
    )
    p.add_argument("--use-gpu", action=argparse.BooleanOptionalAction, help="train on GPUs (NCCL)")
    p.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue from WORK/checkpoints (run: skips the ETL when a validated gold version exists)",
    )
    p.add_argument("--mlflow-uri", help="tracking URI (default: sqlite:///WORK/mlflow.db)")


def _version_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-version", type=int, help="gold Delta version (default: the latest)")


def _no_spark_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-spark",
        action="store_true",
        help="train on the gold table's Parquet files directly (one process, or each rank under torchrun); no Java",
    )
    p.add_argument("--data", help="with --no-spark: the gold Delta table directory (default WORK/lake/gold)")


FLAGS = {
    "etl": (_etl_flags,),
    "validate": (_version_flag,),
    "train": (_train_flags, _version_flag, _no_spark_flags),
    "run": (_etl_flags, _train_flags),
}
HELP = {
    "etl": "ingest, clean, split, tokenize; publish gold if it passes its suite",
    "validate": "re-validate a published gold version",
    "train": "train on a validated gold version",
    "run": "etl and train, end to end, in one MLflow run",
}


def add_flags(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The flags of ``tokenlake COMMAND``; ``jobs/COMMAND_job.py`` takes exactly these."""
    _common(parser)
    for add in FLAGS[command]:
        add(parser)
    return parser


def job_entry(command: str, prog: str, doc: str):
    """``(build_parser, main)`` for a ``jobs/*_job.py`` entry point: the flags of ``tokenlake COMMAND``."""

    def build_parser() -> argparse.ArgumentParser:
        return add_flags(argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0]), command)

    def main(argv: list[str] | None = None) -> int:
        setup_logging()
        args = build_parser().parse_args(argv)
        args.command = command
        return execute(args)

    return build_parser, main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenlake", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write a deterministic labelled JSONL corpus")
    gen.add_argument("--out", required=True)
    gen.add_argument("--docs", type=int, default=4000)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--contrast", type=float, default=None, help="share of order-dependent 'X not Y' documents (default 0.25)"
    )
    gen.add_argument("--dup-rate", type=float, default=0.0, help="extra exact copies, as a share of --docs")
    gen.add_argument("--near-dup-rate", type=float, default=0.0, help="extra copies with 1-10%% of words edited")
    gen.add_argument("--pii-rate", type=float, default=0.0, help="share of clean documents with 1-3 PII values")
    gen.add_argument("--noise-rate", type=float, default=0.0, help="share with markup, entities, controls, boilerplate")
    gen.add_argument("--bad-rate", type=float, default=0.0, help="share of lines that ingest must reject")
    gen.add_argument("--skew", type=float, default=0.0, help="in (0, 1): Pareto lengths; first file's share of rows")
    gen.add_argument("--files", type=int, default=1, help="N > 1: --out is a directory of N part-NNNNN.jsonl files")
    gen.add_argument("--lang", choices=("en", "es"), default="en")
    gen.add_argument(
        "--web-lengths", action="store_true", help="lengths like crawled pages (long tail, mean over 2 KB)"
    )
    for command in FLAGS:
        add_flags(sub.add_parser(command, help=HELP[command]), command)
    ui = sub.add_parser("ui", help="serve the work dir's MLflow store on 127.0.0.1")
    ui.add_argument("--work", default="work")
    ui.add_argument("--port", type=int, default=5000)
    return parser


def mlflow_server_command(backend_db: Path, artifacts: Path, port: int) -> list[str]:
    """``mlflow server`` on 127.0.0.1 with a sqlite backend and a local artifact store it proxies."""
    return [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{backend_db.resolve()}",
            "--artifacts-destination", str(artifacts.resolve()), "--workers", "1"]  # fmt: skip


def config_from_args(args: argparse.Namespace):
    from jobs.config import load_config

    return load_config(
        args.config,
        args.set,
        {
            "train.model": getattr(args, "model", None),
            "train.epochs": getattr(args, "epochs", None),
            "etl.max_len": getattr(args, "max_len", None),
            "etl.task": getattr(args, "task", None),
            "etl.rebuild_gold": getattr(args, "rebuild_gold", None),
            "train.batch_size": getattr(args, "batch_size", None),
            "train.num_processes": getattr(args, "num_processes", None),
            "train.local_mode": getattr(args, "local_mode", None),
            "train.use_gpu": getattr(args, "use_gpu", None),
            "train.resume": getattr(args, "resume", None),
        },
    )


def spark_conf(pairs: list[str]) -> dict[str, str]:
    """``--conf KEY=VALUE`` flags as a dict; a malformed one is a ``ValueError``."""
    conf = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--conf {pair!r}: expected KEY=VALUE")
        conf[key.strip()] = value
    return conf


def _dispatch(args: argparse.Namespace, cfg, work) -> dict:
    """Run the command holding the work dir (``WorkDir.lock``), with its staged files pulled first
    and pushed back after, whether it succeeded or not (a failure's report says what ran)."""
    # under torchrun (--no-spark) every rank runs the command: rank 0 holds the work dir for all
    held = work.lock() if os.environ.get("RANK", "0") == "0" else contextlib.nullcontext()
    with held:
        work.pull()
        try:
            return _run_command(args, cfg, work)
        finally:
            work.push()


def _run_command(args: argparse.Namespace, cfg, work) -> dict:
    from jobs import runner
    from jobs.session import get_spark, storage_settings

    if getattr(args, "no_spark", False):
        return runner.run_train_without_spark(work, cfg, args.data_version, args.mlflow_uri, args.data)
    uris = [work.uri, *(getattr(args, "input", None) or "").split(",")]
    conf, packages = storage_settings([u.strip() for u in uris])
    gpus = 0
    if args.command in ("train", "run") and cfg.train.use_gpu and cfg.train.local_mode:
        import torch

        gpus = torch.cuda.device_count()  # TorchDistributor's local mode asks Spark for the driver's GPUs
    spark = get_spark("tokenlake", master=args.master, conf={**conf, **spark_conf(args.conf)}, packages=packages,
                      driver_gpus=gpus)  # fmt: skip
    if args.command == "etl":
        return runner.run_etl_stage(spark, args.input, work, cfg)
    if args.command == "validate":
        return runner.run_validate_stage(spark, work, cfg, args.data_version)
    if args.command == "train":
        return runner.run_train(spark, work, cfg, args.data_version, args.mlflow_uri)
    return runner.run_pipeline(spark, args.input, work, cfg, args.mlflow_uri)


def _has_credentials(uri: str) -> bool:
    """A user or password in the URI: it would end up in logs, tags and the shell history."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return bool(parts.username or parts.password)


def execute(args: argparse.Namespace) -> int:
    """Run a pipeline command; return the exit code. Every failure is one line on stderr."""
    from etl.pipeline import NoTrainingRows, StoredTableMismatch
    from etl.sources import SourceReadFailed
    from etl.storage import WorkDir, WorkDirBusy
    from etl.validate import ValidationFailed
    from jobs.runner import GoldRefused
    from jobs.session import DeltaJarsMissing
    from jobs.summary import print_summary
    from training.launch import TrainingFailed

    try:
        cfg = config_from_args(args)
        spark_conf(args.conf)
    except (ValueError, TypeError, OSError) as exc:
        return _fail(f"bad configuration: {exc}", EXIT_CONFIG)
    # Executors resolve relative paths against their own working directories: hand them absolute ones.
    work = WorkDir.of(args.work)
    if _has_credentials(args.work) or any(_has_credentials(p) for p in (getattr(args, "input", None) or "").split(",")):
        return _fail(  # not echoed: it holds a secret
            "--work and --input must not carry credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "in the environment (or use a profile or role) instead",
            EXIT_CONFIG,
        )
    if getattr(args, "mlflow_uri", None) and _has_credentials(args.mlflow_uri):
        return _fail(  # the URI is not echoed: it holds a secret
            "--mlflow-uri must not carry credentials; set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the environment instead",
            EXIT_CONFIG,
        )
    if cfg.etl.pseudonymise_pii and args.command in ("run", "etl"):
        from etl.pii import pii_secret

        try:
            pii_secret()  # before any work: a missing key must not fail the run halfway
        except ValueError as exc:
            return _fail(str(exc), EXIT_CONFIG)
    inputs = [p.strip() for p in (getattr(args, "input", None) or "").split(",") if p.strip()]
    missing = [p for p in inputs if not (glob.glob(p) or "://" in p)]
    if missing:
        return _fail(f"input not found: {', '.join(missing)}", EXIT_INPUT)
    try:
        report = _dispatch(args, cfg, work)
    except WorkDirBusy as exc:
        return _fail(str(exc), EXIT_BUSY)
    except DeltaJarsMissing as exc:
        return _fail(str(exc), EXIT_DELTA)
    except StoredTableMismatch as exc:
        return _fail(str(exc), EXIT_CONFIG)
    except (SourceReadFailed, NoTrainingRows) as exc:
        return _fail(str(exc), EXIT_INPUT)
    except ValidationFailed as exc:
        return _fail(f"{exc}; nothing was handed to training", EXIT_VALIDATION)
    except GoldRefused as exc:
        return _fail(str(exc), EXIT_VALIDATION)
    except TrainingFailed as exc:
        return _fail(f"training failed: {exc}", EXIT_TRAINING)
    print_summary(report, work.uri)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def setup_logging() -> None:
    # Petastorm on pyarrow 12 warns about deprecated pyarrow APIs on every read (STACK.md); the
    # variable carries the filter into TorchDistributor's processes.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.basicConfig(
        level=os.environ.get("TOKENLAKE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("py4j", "great_expectations", "petastorm", "mlflow", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        from etl.generate import CONTRAST, generate_corpus

        contrast = CONTRAST if args.contrast is None else args.contrast
        dirt = ("dup_rate", "near_dup_rate", "pii_rate", "noise_rate", "bad_rate", "skew", "files", "lang")
        dirt += ("web_lengths",)
        try:
            print(generate_corpus(args.out, args.docs, args.seed, contrast, **{k: getattr(args, k) for k in dirt}))
        except ValueError as exc:
            return _fail(str(exc), EXIT_CONFIG)
        return 0
    if args.command == "ui":
        from etl.storage import WorkDir

        local = WorkDir.of(args.work).local  # a remote work dir's MLflow store is in its local copy
        command = mlflow_server_command(local / "mlflow.db", local / "mlartifacts", args.port)
        print(f"MLflow UI on http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
        os.execv(command[0], command)
    return execute(args)


if __name__ == "__main__":
    sys.exit(main())
