"""The flags of each ``tokenlake`` command, with their help and the config key each one sets.

``tokenlake COMMAND`` and ``jobs/COMMAND_job.py`` take the same flags (``add_flags``); a flag
declared with ``setting`` sets a config field (``jobs.parsing``: how flags are parsed and traced).
"""

from __future__ import annotations

import argparse

from tokenlake.etl.config import Task
from tokenlake.jobs.failures import EXIT_CODES
from tokenlake.jobs.parsing import positive_int, setting


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--work",
        default="work",
        help="work directory: lake/, tokenizer/, checkpoints/, model/, report.json; a path or a URI "
        "(s3a://bucket/prefix, hdfs://...; S3 credentials and endpoint from the AWS_* variables)",
    )
    p.add_argument("--config", metavar="FILE", help="YAML file with etl: and train: sections (examples/config.yaml)")
    p.add_argument("--master", help="Spark master for a local run, e.g. local[4] (default local[*]; ignored "
                   "under spark-submit)")  # fmt: skip
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
        help="any config field, e.g. --set etl.vocab_size=4000 --set train.lr=5e-4 (`tokenlake config show` "
        "lists them)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Spark's and Ivy's own output on the terminal instead of keeping it in WORK/logs/spark.log",
    )


def _etl_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input",
        required=True,
        help="file, directory or glob (comma-separated for several): JSON Lines, CSV/TSV, Parquet, .txt; .gz/.bz2 too",
    )
    setting(p, "--text-column", "etl.text_column", "input field holding the document text", metavar="NAME")
    setting(p, "--label-column", "etl.label_column", "input field holding the label", metavar="NAME")
    setting(p, "--id-column", "etl.id_column", "input field holding the id (absent: the text's SHA-256)",
             metavar="NAME")  # fmt: skip
    setting(p, "--max-len", "etl.max_len", "tokens per document, special tokens included", type=int, metavar="N")
    setting(p, "--task", "etl.task", "classification (labelled documents, truncated) or causal-lm (unlabelled, "
             "packed blocks)", choices=tuple(Task))  # fmt: skip
    setting(p, "--rebuild-gold", "etl.rebuild_gold", "re-tokenize all of silver into gold even where gold could "
             "grow by the new rows alone", action="store_true")  # fmt: skip


def _train_flags(p: argparse.ArgumentParser) -> None:
    setting(p, "--model", "train.model", "tiny, small or base (from scratch), minilm (pretrained, needs the "
             "pretrained extra) or a local checkpoint directory holding config.json", metavar="NAME")  # fmt: skip
    setting(p, "--epochs", "train.epochs", "passes over the training split", type=int, metavar="N")
    setting(
        p,
        "--batch-size",
        "train.batch_size",
        "samples per step over all ranks (each rank takes its share)",
        type=int,
        metavar="N",
    )
    setting(p, "--num-processes", "train.num_processes", "DDP processes", type=int, metavar="N")
    setting(p, "--local-mode", "train.local_mode", "TorchDistributor processes on the driver or, with "
             "--no-local-mode, in executor tasks", action=argparse.BooleanOptionalAction)  # fmt: skip
    setting(p, "--use-gpu", "train.use_gpu", "train on GPUs (NCCL)", action=argparse.BooleanOptionalAction)
    setting(p, "--resume", "train.resume", "continue from WORK/checkpoints (run: skips the ETL when a validated "
             "gold version exists)", action="store_true")  # fmt: skip
    p.add_argument("--mlflow-uri", metavar="URI", help="tracking URI (default: sqlite:///WORK/mlflow.db)")


def _version_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-version", type=int, metavar="N", help="gold Delta version (default: the latest)")


def _no_spark_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-spark",
        action="store_true",
        help="train on the gold table's Parquet files directly (one process, or each rank under torchrun); no Java",
    )
    p.add_argument("--data", metavar="DIR", help="with --no-spark: the gold Delta table directory (default "
                   "WORK/lake/gold)")  # fmt: skip


def _tune_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trials",
        type=positive_int,
        required=True,
        metavar="N",
        help="finished and pruned trials the study holds when tune ends (a continued study runs the rest)",
    )
    p.add_argument(
        "--timeout-s", type=float, metavar="S", help="start no trial after S seconds (the running one finishes)"
    )
    p.add_argument(
        "--study",
        default="tokenlake",
        metavar="NAME",
        help="the study's name in WORK/tuning/optuna.db; the same name continues it",
    )
    p.add_argument("--space", metavar="FILE", help="search space YAML (default: lr, warm-up, weight decay, batch "
                   "size, dropout; README: Tuning)")  # fmt: skip


def _dry_run_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve the configuration, list the input files, check the model, tokenizer and Delta JARs, "
        "and exit without writing anything",
    )


def _predict_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", dest="model_uri", required=True, metavar="URI", help="runs:/<id>/model, "
                   "models:/<name>@<alias>, models:/<name>/<version>, a downloaded MLflow model or a `tokenlake "
                   "export` directory")  # fmt: skip
    p.add_argument("--input", required=True, help="files as `etl` reads them, or a Delta table (DIR or DIR@VERSION)")
    p.add_argument("--text-column", dest="predict_text_column", metavar="NAME",
                   help="input field holding the text (default: the one the model was trained from)")  # fmt: skip
    p.add_argument("--output", metavar="DELTA_PATH", help="Delta table of predictions (default WORK/predictions; "
                   "rows that cannot be scored go to OUTPUT_quarantine)")  # fmt: skip
    p.add_argument("--batch-size", dest="predict_batch_size", type=positive_int, default=32, metavar="N",
                   help="rows per forward pass in each Spark Python worker")  # fmt: skip
    p.add_argument("--mlflow-uri", metavar="URI", help="tracking URI the model URI is resolved in (default: "
                   "sqlite:///WORK/mlflow.db)")  # fmt: skip


def _export_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", dest="model_uri", required=True, metavar="URI", help="a classifier: runs:/<id>/model, "
                   "models:/<name>@<alias>, models:/<name>/<version> or a downloaded MLflow model")  # fmt: skip
    p.add_argument("--out", required=True, metavar="DIR", help="new directory for the export (a bundle "
                   "`tokenlake predict --model DIR` runs, and export.json)")  # fmt: skip
    p.add_argument("--format", choices=("onnx",), default="onnx", help="export format")
    p.add_argument("--quantize", choices=("int8",), help="dynamic int8 quantization of the weights (ONNX Runtime)")
    p.add_argument("--eval-rows", type=positive_int, default=2000, metavar="N",
                   help="test rows of the model's gold version the export is verified on")  # fmt: skip
    p.add_argument("--work", default="work", help="work directory (its MLflow store is the default tracking URI)")
    p.add_argument("--mlflow-uri", metavar="URI", help="tracking URI (default: sqlite:///WORK/mlflow.db)")


def _generate_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="a .jsonl file, or a directory with --files N")
    p.add_argument("--docs", type=int, default=4000, help="documents to write")
    p.add_argument("--seed", type=int, default=0, help="the same seed writes the same corpus")
    p.add_argument("--contrast", type=float, default=None, help="share of order-dependent 'X not Y' documents "
                   "(default 0.25)")  # fmt: skip
    p.add_argument("--dup-rate", type=float, default=0.0, help="extra exact copies, as a share of --docs")
    p.add_argument("--near-dup-rate", type=float, default=0.0, help="extra copies with 1-10%% of words edited")
    p.add_argument("--pii-rate", type=float, default=0.0, help="share of clean documents with 1-3 PII values")
    p.add_argument("--noise-rate", type=float, default=0.0, help="share with markup, entities, controls, boilerplate")
    p.add_argument("--bad-rate", type=float, default=0.0, help="share of lines that ingest must reject")
    p.add_argument("--skew", type=float, default=0.0, help="in (0, 1): Pareto lengths; first file's share of rows")
    p.add_argument("--files", type=int, default=1, help="N > 1: --out is a directory of N part-NNNNN.jsonl files")
    p.add_argument("--lang", choices=("en", "es"), default="en", help="language of the documents")
    p.add_argument("--web-lengths", action="store_true", help="lengths like crawled pages (long tail, mean over 2 KB)")
    p.add_argument("--group-field", metavar="NAME", help="give each document a field NAME: group a (70%%), b (25%%) "
                   "or c (5%%), for fairness reports (train.fairness_group=meta.NAME)")  # fmt: skip
    p.add_argument("--group-skew", type=float, default=0.3, metavar="RATE", help="with --group-field: share of "
                   "group b's labels that are wrong, so a model is less accurate there")  # fmt: skip


def _runs_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", default="work", help="work directory")
    p.add_argument("--mlflow-uri", metavar="URI", help="tracking URI (default: sqlite:///WORK/mlflow.db)")


def _tables_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", default="work", help="work directory (a path or a URI)")


def _ui_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", default="work", help="work directory")
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1")


TOOLS = {
    "export": _export_flags,
    "generate": _generate_flags,
    "runs": _runs_flags,
    "tables": _tables_flags,
    "ui": _ui_flags,
}
"""The commands that are not pipeline stages, and their flags (``tokenlake config show`` aside)."""
FLAGS = {
    "etl": (_etl_flags, _dry_run_flag),
    "validate": (_version_flag,),
    "train": (_train_flags, _version_flag, _no_spark_flags),
    "tune": (_train_flags, _version_flag, _tune_flags),
    "run": (_etl_flags, _train_flags, _dry_run_flag),
    "predict": (_predict_flags,),
}
HELP = {
    "etl": "ingest, clean, split, tokenize; publish gold if it passes its suite",
    "validate": "re-validate a published gold version",
    "train": "train on a validated gold version",
    "tune": "search training settings with Optuna on a validated gold version; best ones to WORK/tuning/best.yaml",
    "run": "etl and train, end to end, in one MLflow run",
    "predict": "score files or a Delta table with a trained classifier, into a Delta table",
    "generate": "write a deterministic labelled JSONL corpus",
    "export": "export a classifier to ONNX (optionally int8), verified on its gold test split",
    "runs": "list the work dir's MLflow runs: status, start, test accuracy, baseline, gold version",
    "tables": "list each Delta table's versions: time, operation, rows",
    "ui": "serve the work dir's MLflow store on 127.0.0.1",
}
EXAMPLES = {
    "generate": "tokenlake generate --out data/sample.jsonl --docs 4000 --seed 0 --pii-rate 0.05",
    "etl": "tokenlake etl --input 'data/raw/*.csv' --text-column body --label-column topic --work work",
    "validate": "tokenlake validate --work work --data-version 3",
    "train": "tokenlake train --work work --model small --epochs 5\n"
    "  torchrun --nproc-per-node 8 -m tokenlake.jobs.cli train --work work --no-spark --use-gpu",
    "tune": "tokenlake tune --work work --trials 20 --epochs 3\n  tokenlake train --work work --config "
    "work/tuning/best.yaml",
    "run": "tokenlake run --input data/sample.jsonl --work work\n"
    "  tokenlake run --input s3a://bucket/raw/ --work s3a://bucket/tokenlake --dry-run",
    "predict": "tokenlake predict --model models:/tokenlake@champion --input data/new.jsonl --work work",
    "export": "tokenlake export --model models:/tokenlake@champion --format onnx --quantize int8 --out export/",
    "config": "tokenlake config show --config my.yaml --set train.lr=5e-4 --epochs 2",
    "runs": "tokenlake runs --work work",
    "tables": "tokenlake tables --work work",
    "ui": "tokenlake ui --work work --port 5000",
}


def epilog(command: str) -> str:
    lines = EXAMPLES[command].splitlines()
    return "example:\n  " + "\n  ".join(line.strip() for line in lines)


def exit_codes() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())


def add_flags(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The flags of ``tokenlake COMMAND``; ``jobs/COMMAND_job.py`` takes exactly these."""
    _common(parser)
    for add in FLAGS[command]:
        add(parser)
    return parser


def add_config_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every flag that shapes the configuration (for ``tokenlake config show``)."""
    _common(parser)
    _etl_flags(parser)
    _train_flags(parser)
    for action in parser._actions:
        if action.dest == "input":
            action.required = False
    return parser
