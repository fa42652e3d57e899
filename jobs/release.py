"""What a train stage leaves for users: the classifier logged with everything it needs
(``training.packaging``), its model card, and its registry version, gated (``training.registry``)."""

from __future__ import annotations

from dataclasses import asdict

from tokenlake.etl.gold import GoldCommit
from tokenlake.etl.storage import WorkDir, local_dir
from tokenlake.jobs.config import PipelineConfig
from tokenlake.training import packaging
from tokenlake.training.registry import register_and_gate

EXAMPLE = ["Replace this sentence with a document to classify."]
"""The logged input example: a placeholder, so that no training text is copied into the model."""


def release_classifier(
    work: WorkDir, cfg: PipelineConfig, commit: GoldCommit, tables: dict, metrics: dict, etl_config: dict | None
) -> dict:
    """Log the trained classifier as the active run's ``model`` and register it; return the
    report's ``registry`` (with the logged model's ``model_uri``)."""
    import mlflow

    settings = packaging.settings(
        task=commit.task,
        labels=commit.labels,
        max_len=commit.max_len,
        etl=etl_config or asdict(cfg.etl),
        gold=tables["gold"],
    )
    with (
        local_dir(work.path("model"), read=True) as model_dir,
        packaging.bundle(model_dir, work.local / "tokenizer", settings) as bundle,
    ):
        info = packaging.log_classifier(bundle, EXAMPLE)
    name = cfg.train.registered_model
    card = packaging.model_card(name=name, model_settings=settings, metrics=metrics, lineage=tables,
                                model=cfg.train.model)  # fmt: skip
    mlflow.log_text(card, "model_card.md")
    registry = register_and_gate(
        info.model_uri,
        name,
        test_accuracy=metrics["test_accuracy"],
        baseline_accuracy=metrics.get("baseline_test_accuracy"),
        silver=tables.get("silver"),
        gate_rows=cfg.train.gate_rows,
    )
    mlflow.MlflowClient().update_model_version(name, str(registry["version"]), description=card)
    mlflow.set_tags(
        {"registry.version": str(registry["version"]), "registry.promoted": str(registry["promoted"]).lower()}
    )
    return {**registry, "model_uri": info.model_uri}
