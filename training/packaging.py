"""The model a run logs: a bundle (weights, tokenizer, label names, ``max_len``, the ETL settings
that shaped its text, its gold version) served by ``training.text_classifier`` as an MLflow model
from code, with a signature, an input example, requirements pinned to the versions that trained it,
and a model card."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from tokenlake.etl.lake import error_cause
from tokenlake.training import text_classifier
from tokenlake.training.text_classifier import SETTINGS_FILE

INPUT_SETTINGS = (
    "text_column",
    "id_column",
    "label_column",
    "text_format",
    "max_doc_chars",
    "url_mode",
    "pseudonymise_pii",
)
"""The ETL settings ``tokenlake predict`` applies to its input as the ETL did to the training text."""
REQUIREMENTS = ("mlflow", "torch", "transformers", "tokenizers", "pandas", "numpy", "safetensors")


def requirements() -> list[str]:
    """Each package the served model imports, pinned to the version installed here (local build tags dropped)."""
    return [f"{name}=={version(name).split('+')[0]}" for name in REQUIREMENTS]


def settings(*, task: str, labels: list[str], max_len: int, etl: dict, gold: dict) -> dict:
    """What ``tokenlake.json`` holds: everything a caller must not have to supply."""
    return {
        "task": task,
        "labels": list(labels),
        "max_len": max_len,
        "etl": {k: etl[k] for k in INPUT_SETTINGS if k in etl},
        "gold": {k: gold.get(k) for k in ("path", "version", "digest")},
    }


@contextmanager
def bundle(model_dir: Path, tokenizer_dir: Path, model_settings: dict) -> Iterator[Path]:
    """A temporary bundle directory (the layout ``training.text_classifier`` describes)."""
    with tempfile.TemporaryDirectory(prefix="tokenlake-bundle-") as tmp:
        root = Path(tmp) / "bundle"
        shutil.copytree(model_dir, root / "model")
        shutil.copytree(tokenizer_dir, root / "tokenizer")
        (root / SETTINGS_FILE).write_text(json.dumps(model_settings, indent=2) + "\n")
        yield root


def log_classifier(bundle_dir: Path, example_texts: list[str]):
    """Log ``bundle_dir`` as the run's ``model`` (pyfunc from code; nothing pickled); return its ``ModelInfo``."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    example = pd.DataFrame({"text": example_texts[:3]})
    output = text_classifier.Classifier(bundle_dir).predict_frame(example["text"].tolist())
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=text_classifier.__file__,
        artifacts={"bundle": str(bundle_dir)},
        signature=infer_signature(example, output, params={"batch_size": 32}),
        input_example=example,
        pip_requirements=requirements(),
    )


def model_card(*, name: str, model_settings: dict, metrics: dict, lineage: dict, model: str) -> str:
    """Markdown: what the model is, what it was trained on, how well it does beside the baseline,
    what it is for and where it stops."""
    gold = model_settings["gold"]
    rows = [
        ("accuracy", "test_accuracy", "baseline_test_accuracy"),
        ("macro F1", "test_macro_f1", "baseline_test_macro_f1"),
    ]
    table = "\n".join(
        f"| {label} | {metrics[key]:.4f} | {metrics[b]:.4f} |" if b in metrics
        else f"| {label} | {metrics[key]:.4f} | not measured |"
        for label, key, b in rows if key in metrics
    )  # fmt: skip
    tables = "\n".join(f"- {t}: `{info['path']}` version {info['version']}" for t, info in sorted(lineage.items()))
    etl = ", ".join(f"`{k}={v}`" for k, v in model_settings["etl"].items())
    return f"""# {name}: text classifier ({model})

Classifies a document into one of {len(model_settings["labels"])} labels:
{", ".join(f"`{n}`" for n in model_settings["labels"])}.

## Data lineage
Trained on gold version {gold["version"]} (`{gold["path"]}`, digest `{gold.get("digest") or "-"}`):
{tables}

## Metrics (test split of that gold version)
| metric | this model | TF-IDF + logistic regression baseline |
|---|---|---|
{table}

## Intended use
Batch scoring of documents like the training corpus: `tokenlake predict --model <uri> --input ...`
cleans and masks the input as the ETL did ({etl}) and scores it in Spark;
`mlflow.pyfunc.load_model(<uri>).predict(pd.DataFrame({{"text": [...]}}))` scores the text it is given
(label, score, one probability per label).

## Limits
- Text beyond {model_settings["max_len"]} tokens is cut off: long documents are judged on their beginning.
- It knows only the labels above, and only the language and kind of text it was trained on; its
  scores are not calibrated probabilities.
- Measured on a held-out split of the same corpus, not on data from elsewhere.
"""


def local_bundle(model: str, dst: Path | None = None) -> Path:
    """The bundle directory of ``model``: an MLflow model URI (``runs:/``, ``models:/``), a downloaded
    MLflow model directory, or a bundle or export directory itself (it holds ``tokenlake.json``)."""
    path = Path(model)
    if (path / SETTINGS_FILE).is_file():
        return path
    if not (path / "MLmodel").is_file():
        if "://" not in model and ":/" not in model:
            raise FileNotFoundError(f"{model}: neither a model URI nor a directory holding MLmodel or {SETTINGS_FILE}")
        import mlflow

        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=model, dst_path=str(dst) if dst else None))
    found = sorted(p.parent for p in path.rglob(SETTINGS_FILE))
    if not found:
        raise ValueError(f"{model} is not a tokenlake classifier (no {SETTINGS_FILE} inside; a causal-lm model?)")
    return found[0]


def model_identity(model: str) -> dict:
    """``{"uri", "version", "run_id"}`` of ``model`` (and ``name``, for a registered one): the registry
    version a ``models:/NAME/N`` or ``models:/NAME@ALIAS`` URI resolves to (the alias resolved now),
    the run of a ``runs:/`` URI or of a logged model (``models:/m-...``); a directory has neither."""
    identity = {"uri": model, "version": None, "run_id": None}
    if model.startswith("models:/"):
        import mlflow
        from mlflow import MlflowClient

        name, _, rest = model.removeprefix("models:/").partition("/")
        client = MlflowClient()
        if "@" in name:
            name, alias = name.split("@", 1)
            found = client.get_model_version_by_alias(name, alias)
        elif rest:
            found = client.get_model_version(name, rest.split("/")[0])
        else:  # a logged model's id
            return {**identity, "run_id": mlflow.get_logged_model(name).source_run_id}
        identity |= {"name": name, "version": int(found.version), "run_id": found.run_id}
    elif model.startswith("runs:/"):
        identity["run_id"] = model.removeprefix("runs:/").split("/")[0]
    return identity


class ModelUnusable(ValueError):
    """``--model`` names nothing this tracking store or file system holds, or not a classifier."""


def resolve_model(model: str, dst: Path) -> tuple[dict, Path, dict]:
    """``(model_identity, bundle directory, its settings)`` of a classifier, downloaded under
    ``dst`` if it is in MLflow; ``ModelUnusable`` with the first line of the cause if it cannot be."""
    from mlflow.exceptions import MlflowException

    try:
        identity = model_identity(model)
        pinned = f"models:/{identity['name']}/{identity['version']}" if identity.get("name") else model
        found = local_bundle(pinned, dst=dst)  # an alias resolved once: the weights are the version reported
        meta = text_classifier.classifier_settings(found)
    except (MlflowException, OSError, ValueError) as exc:
        raise ModelUnusable(f"--model {model}: {error_cause(exc)}") from exc
    return identity, found, meta
