"""``tokenlake``: the command line. Subcommands call the same functions as ``jobs/*_job.py``;
their flags are in ``jobs.flags``, the commands that are not stages in ``jobs.tools``."""

from __future__ import annotations

import argparse
import contextlib
import glob
import logging
import os
import sys
import warnings

from tokenlake.jobs import tokenlake_version
from tokenlake.jobs.failures import (  # noqa: F401  (the EXIT_* codes are this module's API too)
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_DELTA,
    EXIT_INPUT,
    EXIT_TRAINING,
    EXIT_UNEXPECTED,
    EXIT_VALIDATION,
    MLFLOW_URI_WITH_CREDENTIALS,
    fail,
    has_credentials,
    unexpected,
)
from tokenlake.jobs.flags import (
    FLAGS,
    HELP,
    TOOLS,
    add_config_flags,
    add_flags,
    epilog,
    exit_codes,
)
from tokenlake.jobs.parsing import Parser, config_from_args, resolve_args
from tokenlake.jobs.tools import COMMANDS

DESCRIPTION = (
    "Turn a raw text corpus into Delta tables (bronze, silver, gold, quarantine), each validated by "
    "Great Expectations, and train a transformer on gold with PyTorch DDP on Spark, tracked in MLflow."
)
OVERVIEW = """examples:
  tokenlake run --input data/sample.jsonl --work work          # etl, then train, in one MLflow run
  tokenlake run --input corpus.csv --text-column body --label-column topic --dry-run
  tokenlake etl --input 'data/raw/*.jsonl.gz' --work work
  tokenlake train --work work --model small --epochs 5
  tokenlake tune --work work --trials 20                       # Optuna; best settings to work/tuning/best.yaml
  tokenlake predict --model models:/tokenlake@champion --input new.jsonl --work work
  tokenlake runs --work work                                   # the work dir's MLflow runs
  tokenlake tables --work work                                 # each Delta table's versions
  tokenlake COMMAND --help                                     # a command's flags and defaults"""


def job_entry(command: str, prog: str, doc: str):
    """``(build_parser, main)`` for a ``jobs/*_job.py`` entry point: the flags of ``tokenlake COMMAND``."""

    def build_parser() -> argparse.ArgumentParser:
        first = doc.split("\n\n")[0].replace("``", "")
        return add_flags(Parser(prog=prog, description=first, epilog=exit_codes()), command)

    def main(argv: list[str] | None = None) -> int:
        setup_logging()
        args = build_parser().parse_args(argv)
        args.command = command
        return execute(args)

    return build_parser, main


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tokenlake", description=DESCRIPTION, epilog=f"{OVERVIEW}\n\n{exit_codes()}")
    parser.add_argument("--version", action="version", version=f"tokenlake {tokenlake_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog(name))

    for name in FLAGS:
        add_flags(command(name, HELP[name]), name)
    config = command("config", "show the effective configuration")
    show = config.add_subparsers(dest="action", required=True, metavar="ACTION", help="show").add_parser(
        "show", help="every setting with its value and where it came from (default, YAML, --set, a flag)",
        description="every setting with its value and where it came from: defaults <- --config YAML <- --set "
        "<- named flags", epilog=epilog("config"))  # fmt: skip
    add_config_flags(show)
    for name, add in TOOLS.items():
        add(command(name, HELP[name]))
    return parser


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
    from tokenlake.jobs import runner
    from tokenlake.jobs.session import get_spark, storage_settings

    if getattr(args, "no_spark", False):
        return runner.run_train_without_spark(work, cfg, args.data_version, args.mlflow_uri, args.data)
    uris = [work.uri, *(getattr(args, "input", None) or "").split(","), getattr(args, "output", None) or ""]
    conf, packages = storage_settings([u.strip() for u in uris])
    gpus = 0
    if args.command in ("train", "tune", "run") and cfg.train.use_gpu and cfg.train.local_mode:
        import torch

        gpus = torch.cuda.device_count()  # TorchDistributor's local mode asks Spark for the driver's GPUs
    jvm_output = None if getattr(args, "verbose", False) else work.local / "logs" / "spark.log"
    spark = get_spark("tokenlake", master=args.master, conf={**conf, **spark_conf(args.conf)}, packages=packages,
                      driver_gpus=gpus, jvm_output=jvm_output)  # fmt: skip
    if args.command == "predict":
        return _predict(spark, args, cfg, work)
    if args.command == "etl":
        return runner.run_etl_stage(spark, args.input, work, cfg)
    if args.command == "validate":
        return runner.run_validate_stage(spark, work, cfg, args.data_version)
    if args.command == "train":
        return runner.run_train(spark, work, cfg, args.data_version, args.mlflow_uri)
    if args.command == "tune":
        from tokenlake.jobs.tune import run_tune

        return run_tune(spark, work, cfg, trials=args.trials, timeout_s=args.timeout_s, study_name=args.study,
                        space_path=args.space, version=args.data_version, mlflow_uri=args.mlflow_uri)  # fmt: skip
    return runner.run_pipeline(spark, args.input, work, cfg, args.mlflow_uri)


def _predict(spark, args: argparse.Namespace, cfg, work) -> dict:
    """``tokenlake predict``: the model's ETL settings, overridden only by those set explicitly."""
    import dataclasses

    import mlflow

    from tokenlake.jobs.mlflow_run import default_mlflow_uri
    from tokenlake.jobs.predict import run_predict

    mlflow.set_tracking_uri(args.mlflow_uri or default_mlflow_uri(work))
    origins = resolve_args(args).origins
    etl = dataclasses.asdict(cfg.etl)
    overrides = {k: etl[k] for k in etl if origins.get(f"etl.{k}", "default") != "default"}
    if args.predict_text_column:
        overrides["text_column"] = args.predict_text_column
    return run_predict(spark, model=args.model_uri, input_path=args.input, work=work, output=args.output,
                       batch_size=args.predict_batch_size, overrides=overrides)  # fmt: skip


def execute(args: argparse.Namespace) -> int:
    """Run a pipeline command; return the exit code. Every failure is one line on stderr."""
    from tokenlake.etl.pipeline import NoTrainingRows, StoredTableMismatch
    from tokenlake.etl.sources import SourceReadFailed
    from tokenlake.etl.storage import WorkDir, WorkDirBusy
    from tokenlake.etl.validate import ValidationFailed
    from tokenlake.jobs.config import check_names
    from tokenlake.jobs.gold_trust import GoldRefused
    from tokenlake.jobs.mlflow_run import Stopped, stop_on_signals
    from tokenlake.jobs.predict import PredictInputError
    from tokenlake.jobs.session import DeltaJarsMissing
    from tokenlake.jobs.summary import print_summary
    from tokenlake.training.launch import TrainingFailed
    from tokenlake.training.packaging import ModelUnusable

    try:
        cfg = config_from_args(args)
        spark_conf(args.conf)
        check_names(cfg)  # a model or tokenizer that is not there fails now, not after Spark started
        if args.command == "tune":
            from tokenlake.jobs.tune import check_tune_settings

            check_tune_settings(cfg, args.space)
    except (ValueError, TypeError, OSError) as exc:
        return fail(f"bad configuration: {exc}", EXIT_CONFIG)
    # Executors resolve relative paths against their own working directories: hand them absolute ones.
    work = WorkDir.of(args.work)
    paths = [args.work, getattr(args, "output", None) or "", *(getattr(args, "input", None) or "").split(",")]
    if any(has_credentials(p) for p in paths):
        return fail(  # not echoed: it holds a secret
            "--work, --input and --output must not carry credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "in the environment (or use a profile or role) instead",
            EXIT_CONFIG,
        )
    if getattr(args, "mlflow_uri", None) and has_credentials(args.mlflow_uri):
        return fail(MLFLOW_URI_WITH_CREDENTIALS, EXIT_CONFIG)  # the URI is not echoed: it holds a secret
    if cfg.etl.pseudonymise_pii and args.command in ("run", "etl"):
        from tokenlake.etl.pii import pii_secret

        try:
            pii_secret()  # before any work: a missing key must not fail the run halfway
        except ValueError as exc:
            return fail(str(exc), EXIT_CONFIG)
    inputs = [p.strip() for p in (getattr(args, "input", None) or "").split(",") if p.strip()]
    if args.command == "predict":  # a Delta table may be named at a version: DIR@N
        from tokenlake.jobs.predict import split_version

        inputs = [split_version(p)[0] for p in inputs]
    missing = [p for p in inputs if not (glob.glob(p) or "://" in p)]
    if missing:
        return fail(f"input not found: {', '.join(missing)}", EXIT_INPUT)
    if getattr(args, "dry_run", False):
        from tokenlake.jobs.overview import dry_run_lines

        try:
            print("\n".join(dry_run_lines(args.command, getattr(args, "input", None), work.uri, cfg)))
        except FileNotFoundError as exc:
            return fail(str(exc), EXIT_INPUT)
        return 0
    try:
        with stop_on_signals():
            report = _dispatch(args, cfg, work)
    except Stopped as stop:  # 128 + the signal's number, as a shell reports it
        where = "; ".join(stop.where) or "tables are only ever published whole, so nothing half-written is visible"
        return fail(f"stopped by {stop.signal} {where}", 128 + stop.signum)
    except WorkDirBusy as exc:
        return fail(str(exc), EXIT_BUSY)
    except DeltaJarsMissing as exc:
        return fail(str(exc), EXIT_DELTA)
    except StoredTableMismatch as exc:
        return fail(str(exc), EXIT_CONFIG)
    except (SourceReadFailed, NoTrainingRows, PredictInputError) as exc:
        return fail(str(exc), EXIT_INPUT)
    except ModelUnusable as exc:
        return fail(str(exc), EXIT_CONFIG)
    except ValidationFailed as exc:
        return fail(f"{exc}; nothing was handed to training", EXIT_VALIDATION)
    except GoldRefused as exc:
        return fail(str(exc), EXIT_VALIDATION)
    except TrainingFailed as exc:
        return fail(f"training failed: {exc}", EXIT_TRAINING)
    except Exception as exc:  # a bug or an outage nobody foresaw: one line here, the traceback in a file
        return unexpected(exc, work.local)
    print_summary(report, work.uri, args.command)
    return 0


def setup_logging() -> None:
    # Petastorm on pyarrow 12 warns about deprecated pyarrow APIs on every read (STACK.md); the
    # variable carries the filter into TorchDistributor's processes.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
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
    return COMMANDS.get(args.command, execute)(args)


if __name__ == "__main__":
    sys.exit(main())
