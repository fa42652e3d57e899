"""Entry points: the ``tokenlake`` CLI and thin jobs for ``spark-submit`` and schedulers."""
