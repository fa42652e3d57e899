"""The commands that are not pipeline stages: ``generate``, ``export``, ``config show``, ``runs``,
``tables`` and ``ui`` (the stages go through ``jobs.cli.execute``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tokenlake.jobs.failures import (
    EXIT_CONFIG,
    EXIT_INPUT,
    EXIT_VALIDATION,
    MLFLOW_URI_WITH_CREDENTIALS,
    fail,
    has_credentials,
    unexpected,
)
from tokenlake.jobs.parsing import resolve_args


def _generate(args: argparse.Namespace) -> int:
    from tokenlake.synthetic.generate import CONTRAST, generate_corpus

    contrast = CONTRAST if args.contrast is None else args.contrast
    dirt = ("dup_rate", "near_dup_rate", "pii_rate", "noise_rate", "bad_rate", "skew", "files", "lang")
    dirt += ("web_lengths", "group_field", "group_skew")
    try:
        print(generate_corpus(args.out, args.docs, args.seed, contrast, **{k: getattr(args, k) for k in dirt}))
    except ValueError as exc:
        return fail(str(exc), EXIT_CONFIG)
    return 0


def _export(args: argparse.Namespace) -> int:
    """``tokenlake export``: nothing is written unless the export keeps the model's accuracy."""
    import mlflow

    from tokenlake.etl.lake import error_cause
    from tokenlake.etl.storage import WorkDir
    from tokenlake.jobs.export import run_export, summary
    from tokenlake.jobs.mlflow_run import default_mlflow_uri
    from tokenlake.training.export import ExportRefused
    from tokenlake.training.packaging import ModelUnusable

    work = WorkDir.of(args.work)
    if args.mlflow_uri and has_credentials(args.mlflow_uri):
        return fail(MLFLOW_URI_WITH_CREDENTIALS, EXIT_CONFIG)
    mlflow.set_tracking_uri(args.mlflow_uri or default_mlflow_uri(work))
    try:
        report = run_export(args.model_uri, args.out, quantize=args.quantize, eval_rows=args.eval_rows)
    except ExportRefused as exc:
        return fail(str(exc), EXIT_VALIDATION)
    except ModuleNotFoundError as exc:
        return fail(f"{exc}: install the export extra (pip install 'tokenlake[export]')", EXIT_CONFIG)
    except (ModelUnusable, FileExistsError, ValueError) as exc:
        return fail(str(exc), EXIT_CONFIG)
    except OSError as exc:  # the model's gold version gone or unreadable, or --out not writable
        return fail(f"cannot read or write what the export needs: {error_cause(exc, 300)}", EXIT_INPUT)
    except Exception as exc:  # one line here, the traceback in a file, as for the stages
        return unexpected(exc, work.local)
    print(summary(report, Path(args.out)))
    return 0


def _ui(args: argparse.Namespace) -> int:
    from tokenlake.jobs.overview import serve_ui

    return serve_ui(args.work, args.port)


def _config(args: argparse.Namespace) -> int:
    from tokenlake.jobs.overview import config_lines

    try:
        print(config_lines(resolve_args(args)))
    except (ValueError, TypeError, OSError) as exc:
        return fail(f"bad configuration: {exc}", EXIT_CONFIG)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from tokenlake.etl.storage import WorkDir
    from tokenlake.jobs.overview import runs_text

    print(runs_text(WorkDir.of(args.work), args.mlflow_uri))
    return 0


def _tables(args: argparse.Namespace) -> int:
    from tokenlake.etl.storage import WorkDir
    from tokenlake.jobs.overview import tables_text

    print(tables_text(WorkDir.of(args.work)))
    return 0


COMMANDS = {"export": _export, "generate": _generate, "ui": _ui, "config": _config, "runs": _runs, "tables": _tables}
