"""MLflow: one run per pipeline run, with the config, metrics, model, tokenizer and lineage.

The driver logs (after TorchDistributor returns rank 0's verified result), so nothing about
tracking has to reach executors. A classifier is logged by ``training.packaging`` (pyfunc from
code, nothing pickled); a causal LM with the ``pickle`` serialisation of the pytorch flavour: MLflow
3's default ``pt2`` format needs an input example and is ~15x slower.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tokenlake.etl.storage import local_dir


def flatten(prefix: str, config: dict) -> dict[str, str]:
    """``{"etl.max_len": "128", ...}``: MLflow params from a config dict."""
    return {f"{prefix}.{k}": json.dumps(v) if isinstance(v, (list, tuple, dict)) else str(v) for k, v in config.items()}


def git_commit() -> str:
    """``$TOKENLAKE_GIT_COMMIT`` (set by the Databricks bundle), else the checkout's HEAD."""
    if os.environ.get("TOKENLAKE_GIT_COMMIT"):
        return os.environ["TOKENLAKE_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def lineage_tags(tables: dict, validation: dict | None, tokenizer_fingerprint: str) -> dict[str, str]:
    """Tags that say exactly which data a run trained on and whether it passed validation."""
    tags = {"git_commit": git_commit(), "tokenizer_fingerprint": tokenizer_fingerprint}
    for name, table in tables.items():
        tags[f"delta.{name}.path"] = table["path"]
        tags[f"delta.{name}.version"] = str(table["version"])
        if table.get("digest"):
            tags[f"delta.{name}.digest"] = table["digest"]
    if validation is not None:
        tags["validation.success"] = str(validation["success"]).lower()
        tags["validation.failed_expectations"] = ",".join(validation["failed_expectations"])
    return tags


def log_delta_inputs(tables: dict) -> None:
    """Each Delta table version the run used, as an MLflow dataset input whose source is the
    table's path and version (gold in the ``training`` context, the others under their names)."""
    import hashlib

    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    class VersionedSource(DeltaDatasetSource):
        """MLflow 3.17's ``to_dict`` leaves out a version that is falsy, so version 0 was lost."""

        def to_dict(self) -> dict:
            return {**super().to_dict(), "delta_table_version": self._delta_table_version}

    for name, table in tables.items():
        source = VersionedSource(path=table["path"], delta_table_version=int(table["version"]))
        identity = f"{table['path']}@{table['version']}:{table.get('digest') or ''}"
        dataset = MetaDataset(source, name=f"{name}@v{table['version']}",
                              digest=hashlib.sha256(identity.encode()).hexdigest()[:16])  # fmt: skip
        mlflow.log_input(dataset, context="training" if name == "gold" else name)


def log_figure(fig, artifact_file: str) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def curve_figure(result: dict):
    """Training loss per logged step and validation loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = result.get("steps", [])
    if steps:
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], color="#1f4e79", label="train loss (per step)")
    per_epoch = result["steps_per_epoch"]
    history = result["history"]
    for h in history:  # epoch ends, labelled
        ax.axvline(h["epoch"] * per_epoch, color="#888888", linestyle=":", linewidth=1)
        ax.annotate(f"epoch {h['epoch']}", (h["epoch"] * per_epoch, 1), xycoords=("data", "axes fraction"),
                    ha="right", va="top", fontsize=8, color="#444444")  # fmt: skip
    ax.plot([h["epoch"] * per_epoch for h in history], [h["val_loss"] for h in history], "o-", color="#c0392b",
            label="validation loss (per epoch)")  # fmt: skip
    ax.set_title("Training and validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_figure(confusion: list[list[int]], labels: list[str]):
    """The test confusion matrix, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    image = ax.imshow(confusion, cmap="Blues")
    ax.set_title("Test confusion matrix")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    dark = max(max(row) for row in confusion) / 2 if confusion else 0
    for i, row in enumerate(confusion):
        for j, n in enumerate(row):  # white on dark cells, black on light ones
            ax.text(j, i, str(n), ha="center", va="center", color="white" if n > dark else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def test_scores(test: dict) -> dict:
    """The test evaluation's scores (accuracy, loss, ...), without its confusion matrix and row count."""
    return {k: v for k, v in test.items() if k not in ("confusion", "count")}


def log_epochs(result: dict) -> None:
    """Each epoch's metrics (at its epoch number) and, unless it was not run, the test scores."""
    import mlflow

    for row in result["history"]:
        mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=row["epoch"])
    if result["test"] is not None:
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in test_scores(result["test"]).items()})


def log_training(result: dict, labels: list[str]) -> None:
    """Per-step, per-epoch and final metrics, a training-curve and a confusion-matrix PNG, into the active run."""
    import mlflow

    log_epochs(result)
    test = result["test"]
    mlflow.log_metric("train_seconds", result["train_seconds"])
    for row in result.get("steps", []):
        mlflow.log_metrics({f"step_{k}": float(v) for k, v in row.items() if k != "step"}, step=row["step"])
    if "confusion" in test:
        mlflow.log_dict({"labels": labels, "confusion": test["confusion"]}, "test_confusion.json")  # rows: true
        log_figure(confusion_figure(test["confusion"], labels), "plots/confusion_matrix.png")
    log_figure(curve_figure(result), "plots/training_curve.png")


def log_causal_lm(model_dir: str) -> str:
    """A causal LM as the run's ``model`` (``mlflow.pytorch``, pickle serialisation: reload it with
    ``mlflow.pytorch.load_model`` from a store you trust); return the model's URI."""
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM

    with local_dir(model_dir, read=True) as local:
        model = AutoModelForCausalLM.from_pretrained(str(local))
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "transformers"],
    )
    return info.model_uri
