"""How a command fails: its exit code (``EXIT_CODES``, printed by every ``--help``), one line on
stderr that says why (``fail``), and for an error nobody foresaw the traceback kept in a file
(``unexpected``). Shared by the stages (``jobs.cli.execute``) and the other commands (``jobs.tools``)."""

from __future__ import annotations

import sys

EXIT_CODES = {
    0: "success",
    1: "an error nobody foresaw (a bug, an outage): one line here, the traceback in WORK/logs/error-*.log",
    2: "bad configuration or flags (found before Spark starts), or a --model that cannot be used",
    3: "a table failed its expectation suite, gold was refused (another tokenizer, files changed), or an export "
    "lost accuracy",
    4: "input missing, unreadable, or without a usable training row",
    5: "Delta Lake's JARs missing, or Spark could not start",
    6: "training failed (each rank's error is quoted)",
    7: "another run holds the work dir",
    130: "stopped by Ctrl-C (SIGINT); the MLflow run is marked KILLED",
    143: "stopped by SIGTERM; the MLflow run is marked KILLED",
}
EXIT_UNEXPECTED, EXIT_CONFIG, EXIT_VALIDATION, EXIT_INPUT, EXIT_DELTA, EXIT_TRAINING, EXIT_BUSY = 1, 2, 3, 4, 5, 6, 7
MLFLOW_URI_WITH_CREDENTIALS = (
    "--mlflow-uri must not carry credentials; set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
    "(or MLFLOW_TRACKING_TOKEN) in the environment instead"
)


def fail(message: str, code: int) -> int:
    """Say why on one line of stderr; return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code


def _keep_traceback(local_work) -> str:
    """Write the exception being handled to ``logs/error-<time>-<pid>.log`` under ``local_work`` (a
    work dir's local copy); return where."""
    import os
    import traceback
    from datetime import UTC, datetime
    from pathlib import Path

    path = Path(local_work) / "logs" / f"error-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(traceback.format_exc())
    return str(path)


def has_credentials(uri: str) -> bool:
    """A user or password in the URI: it would end up in logs, tags and the shell history."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    return bool(parts.username or parts.password)


def unexpected(exc: BaseException, local_work) -> int:
    """Exit 1 for an error nobody foresaw (a bug, an outage): its most specific line here, the
    traceback in ``logs/`` of the work dir's local copy."""
    from tokenlake.etl.lake import error_cause

    kept = _keep_traceback(local_work)
    return fail(f"unexpected {type(exc).__name__}: {error_cause(exc, 300)} (traceback in {kept})", EXIT_UNEXPECTED)
