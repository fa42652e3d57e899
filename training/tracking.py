"""MLflow: one run per pipeline run, with the config, metrics, model, tokenizer and lineage.

The driver logs (after TorchDistributor returns rank 0's verified result), so nothing about
tracking has to reach executors. Models are logged with the ``pickle`` serialisation of the
pytorch flavour: MLflow 3's default ``pt2`` format needs an input example and is ~15x slower.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from etl.config import Task
from etl.storage import local_dir


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


def _log_figure(fig, artifact_file: str) -> None:
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
        ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="train loss (per step)")
    per_epoch = result["steps_per_epoch"]
    history = result["history"]
    ax.plot([h["epoch"] * per_epoch for h in history], [h["val_loss"] for h in history], "o-", label="validation loss")
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
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(confusion):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center")
    fig.tight_layout()
    return fig


def log_training(result: dict, task: str, model_dir: str, tokenizer_dir: Path, labels: list[str]) -> None:
    """Per-step, per-epoch and final metrics, a training-curve and a confusion-matrix PNG, the
    model (reloadable with ``mlflow.pytorch.load_model``) and the tokenizer, into the active run."""
    import mlflow
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    for row in result["history"]:
        mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "epoch"}, step=row["epoch"])
    test = result["test"]
    mlflow.log_metrics({f"test_{k}": float(v) for k, v in test.items() if k not in ("confusion", "count")})
    mlflow.log_metric("train_seconds", result["train_seconds"])
    for row in result.get("steps", []):
        mlflow.log_metrics({f"step_{k}": float(v) for k, v in row.items() if k != "step"}, step=row["step"])
    if "confusion" in test:
        mlflow.log_dict({"confusion": test["confusion"]}, "test_confusion.json")
        _log_figure(confusion_figure(test["confusion"], labels), "plots/confusion_matrix.png")
    _log_figure(curve_figure(result), "plots/training_curve.png")
    auto = AutoModelForCausalLM if task == Task.CAUSAL_LM else AutoModelForSequenceClassification
    with local_dir(model_dir, read=True) as local:
        model = auto.from_pretrained(str(local))
    mlflow.pytorch.log_model(
        model,
        name="model",
        serialization_format="pickle",
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "transformers"],
    )
    mlflow.log_artifacts(str(tokenizer_dir), artifact_path="tokenizer")
