"""Entry points: the ``tokenlake`` CLI and thin jobs for ``spark-submit`` and schedulers."""

from importlib.metadata import PackageNotFoundError, version


def tokenlake_version() -> str:
    """The installed release (``unknown`` when run from a clone that was not installed)."""
    try:
        return version("tokenlake")
    except PackageNotFoundError:
        return "unknown"
