"""The model registry's gate: every run's model is registered with the alias ``candidate``; the alias
``champion`` moves to it only if it beats the linear baseline and the current champion.

The candidate and the champion are scored by the same code (``text_classifier.Classifier``) on the
same rows: the first ``train.gate_rows`` rows of the test split of the silver version the candidate
was trained from (its gold was tokenized from exactly those texts, and the baseline was scored on
that split too). Silver is read from its Delta log's Parquet files, stopping once enough rows are
read, so the gate costs the same on a 100 GB lake as on the sample.
"""

from __future__ import annotations

import logging
import tempfile

from tokenlake.training.gold_files import first_rows
from tokenlake.training.packaging import local_bundle
from tokenlake.training.text_classifier import Classifier

log = logging.getLogger("tokenlake")
CANDIDATE, CHAMPION = "candidate", "champion"


def test_rows(silver: dict, limit: int) -> tuple[list[str], list[str]]:
    """Texts and labels of the first ``limit`` test rows of ``silver`` (``{"path", "version"}``), in commit order."""
    rows = first_rows(silver["path"], silver["version"], split="test", columns=["text", "label"], limit=limit)
    return rows["text"], rows["label"]


def accuracy(model_uri: str, texts: list[str], labels: list[str]) -> float:
    """The share of ``texts`` the model at ``model_uri`` labels as ``labels`` say."""
    with tempfile.TemporaryDirectory(prefix="tokenlake-gate-") as tmp:
        predicted = Classifier(local_bundle(model_uri, dst=tmp)).predict_frame(texts)["label"].tolist()
    return sum(p == t for p, t in zip(predicted, labels, strict=True)) / len(labels)


def register_and_gate(
    model_uri: str,
    name: str,
    *,
    test_accuracy: float,
    baseline_accuracy: float | None,
    silver: dict | None,
    gate_rows: int,
) -> dict:
    """Register ``model_uri`` as a new version of ``name`` with the alias ``candidate``, move
    ``champion`` to it if it earns it, and say what happened (the report's ``registry``).

    Against the baseline: ``test_accuracy`` (training's, over the whole test split) beside the
    baseline's over the same split. Against the champion: both scored here on the same rows."""
    from mlflow import MlflowClient, register_model
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    version = register_model(model_uri, name).version
    client.set_registered_model_alias(name, CANDIDATE, version)
    uri = f"models:/{name}/{version}"
    out = {"name": name, "version": int(version), "uri": uri, "aliases": [CANDIDATE], "promoted": False,
           "test_accuracy": test_accuracy, "baseline_accuracy": baseline_accuracy, "champion": None}  # fmt: skip
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        champion = None
    if baseline_accuracy is None:
        out["reason"] = "no baseline accuracy to beat (train.baseline is off, or training ran without Spark)"
    elif test_accuracy <= baseline_accuracy:
        out["reason"] = f"test accuracy {test_accuracy:.4f} does not beat the baseline's {baseline_accuracy:.4f}"
    elif champion is None:
        out["reason"] = (
            f"test accuracy {test_accuracy:.4f} beats the baseline's {baseline_accuracy:.4f}; no champion yet"
        )
        out["promoted"] = True
    else:
        texts, labels = test_rows(silver, gate_rows) if silver else ([], [])
        if not texts:
            out["reason"] = "no silver test rows to score the candidate and the champion on"
        else:
            mine = accuracy(uri, texts, labels)
            theirs = accuracy(f"models:/{name}/{champion.version}", texts, labels)
            out |= {"eval_rows": len(texts), "candidate_accuracy": mine,
                    "champion": {"version": int(champion.version), "accuracy": theirs}}  # fmt: skip
            same = f"on the same {len(texts)} test rows of silver v{silver['version']}"
            out["promoted"] = mine > theirs
            out["reason"] = (f"accuracy {mine:.4f} {'beats' if mine > theirs else 'does not beat'} champion "
                             f"version {champion.version}'s {theirs:.4f} {same}")  # fmt: skip
    if out["promoted"]:
        client.set_registered_model_alias(name, CHAMPION, version)
        out["aliases"] = [CANDIDATE, CHAMPION]
    log.info("registry: %s version %s %s: %s", name, version, "promoted" if out["promoted"] else "not promoted",
             out["reason"])  # fmt: skip
    return out
