"""The fairness report (``train.fairness_group: meta.<field>``): after the test evaluation, the
trained classifier scores silver's test split in Spark (the same documents gold's test split was
tokenized from), and Fairlearn's ``MetricFrame`` gives accuracy, macro F1 and selection rate per
value of that ``meta`` field, and the largest differences between groups.

Only the counts of (group, true label, predicted label) leave the executors; they are the
MetricFrame's sample weights, so the figures are exact whatever the test split's size."""

from __future__ import annotations

import functools
from dataclasses import asdict

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tokenlake.etl.gold import GoldCommit
from tokenlake.etl.lake import read_table
from tokenlake.etl.storage import WorkDir, local_dir
from tokenlake.jobs.config import PipelineConfig
from tokenlake.training import packaging
from tokenlake.training.inference import score_frame

OTHER = "other"
"""The group that groups smaller than ``train.fairness_min_rows`` are merged into."""
MISSING = "(missing)"
"""The group of rows whose ``meta`` lacks the field."""
METRICS = ("accuracy", "macro_f1", "selection_rate")


def group_counts(spark: SparkSession, bundle, silver: dict, field: str, labels: list[str]) -> list[tuple]:
    """``(group, true label, predicted label, rows)`` of silver's test split scored by ``bundle``."""
    test = read_table(spark, silver["path"], silver["version"]).where(F.col("split") == "test")
    frame = test.select(
        F.coalesce(F.col("meta")[field], F.lit(MISSING)).alias("fairness_group"),
        F.col("label").alias("true_label"),
        "text",
    )
    scored = score_frame(frame, bundle, labels)
    rows = scored.groupBy("fairness_group", "true_label", "label").count().collect()
    return [(r["fairness_group"], r["true_label"], r["label"], r["count"]) for r in rows]


def merge_small(counts: list[tuple], min_rows: int) -> tuple[list[tuple], list[str]]:
    """``counts`` with every group of fewer than ``min_rows`` rows renamed ``OTHER``, and the
    names of the groups merged."""
    sizes: dict[str, int] = {}
    for group, _, _, n in counts:
        sizes[group] = sizes.get(group, 0) + n
    small = sorted(g for g, n in sizes.items() if n < min_rows)
    return [(OTHER if g in small else g, t, p, n) for g, t, p, n in counts], small


def fairness_metrics(counts: list[tuple], positive_label: str) -> dict:
    """``groups`` {name: {rows, accuracy, macro_f1, selection_rate}} and the largest between-group
    differences of each, from ``(group, true, predicted, rows)`` counts (Fairlearn's MetricFrame,
    the counts as sample weights)."""
    import numpy as np
    from fairlearn.metrics import MetricFrame, selection_rate
    from sklearn.metrics import accuracy_score, f1_score

    groups = np.array([c[0] for c in counts], dtype=object)
    y_true = np.array([c[1] for c in counts], dtype=object)
    y_pred = np.array([c[2] for c in counts], dtype=object)
    weights = np.array([c[3] for c in counts], dtype=float)
    metrics = {
        "accuracy": accuracy_score,
        "macro_f1": functools.partial(f1_score, average="macro", zero_division=0.0),
        "selection_rate": functools.partial(selection_rate, pos_label=positive_label),
        "rows": lambda y_true, y_pred, sample_weight: float(np.sum(sample_weight)),
    }
    frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups,
                        sample_params={name: {"sample_weight": weights} for name in metrics})  # fmt: skip
    by_group = frame.by_group
    differences = frame.difference(method="between_groups")
    return {
        "groups": {
            str(name): {"rows": int(row["rows"]), **{m: round(float(row[m]), 6) for m in METRICS}}
            for name, row in by_group.iterrows()
        },
        "overall": {m: round(float(frame.overall[m]), 6) for m in METRICS},
        **{f"max_{m}_gap": round(float(differences[m]), 6) for m in METRICS},
    }


def fairness_figure(fairness: dict):
    """Accuracy, macro F1 and selection rate per group, as grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(fairness["groups"])
    fig, ax = plt.subplots(figsize=(max(5, 1.5 * len(names) + 2), 4))
    width = 0.8 / len(METRICS)
    for i, metric in enumerate(METRICS):
        xs = [j + (i - 1) * width for j in range(len(names))]
        ax.bar(xs, [fairness["groups"][n][metric] for n in names], width, label=metric)
    ax.set_xticks(range(len(names)), [f"{n}\n({fairness['groups'][n]['rows']} rows)" for n in names])
    ax.set_ylim(0, 1)
    ax.set_title(f"Test metrics by {fairness['group']} (largest accuracy gap {fairness['max_accuracy_gap']:.3f})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def fairness_stage(
    spark: SparkSession, work: WorkDir, cfg: PipelineConfig, commit: GoldCommit, silver: dict, etl_config: dict | None
) -> dict:
    """The report's ``fairness``, also logged to the active MLflow run (``fairness/report.json``,
    ``fairness/by_group.png`` and ``fairness_max_*_gap`` metrics)."""
    import mlflow

    from tokenlake.training.tracking import log_figure

    train = cfg.train
    field = train.fairness_group.removeprefix("meta.")
    positive = train.fairness_positive_label or commit.labels[-1]
    if positive not in commit.labels:
        raise ValueError(f"train.fairness_positive_label {positive!r} is not one of gold's labels {commit.labels}")
    settings = packaging.settings(task=commit.task, labels=commit.labels, max_len=commit.max_len,
                                  etl=etl_config or asdict(cfg.etl), gold={})  # fmt: skip
    with (
        local_dir(work.path("model"), read=True) as model_dir,
        packaging.bundle(model_dir, work.local / "tokenizer", settings) as bundle,
    ):
        counts = group_counts(spark, bundle, silver, field, commit.labels)
    counts, merged = merge_small(counts, train.fairness_min_rows)
    fairness = {
        "group": train.fairness_group,
        "positive_label": positive,
        "min_rows": train.fairness_min_rows,
        "merged_into_other": merged,
        "silver": silver,
        **fairness_metrics(counts, positive),
    }
    mlflow.log_dict(fairness, "fairness/report.json")
    mlflow.log_metrics({f"fairness_max_{m}_gap": fairness[f"max_{m}_gap"] for m in METRICS})
    log_figure(fairness_figure(fairness), "fairness/by_group.png")
    return fairness
