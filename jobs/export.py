"""``tokenlake export``: a registered or logged classifier exported (``training.export``, which
writes ``export.json`` beside it), that file logged to the run that trained the model."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tokenlake.training.export import export
from tokenlake.training.packaging import resolve_model


def run_export(model: str, out: str, *, quantize: str | None, eval_rows: int) -> dict:
    """Export ``model`` to the local directory ``out``; ``ModelUnusable``, ``ValueError`` (``out`` a
    URI), ``FileExistsError`` (``out`` not empty) or ``ExportRefused`` (accuracy lost, or no test rows:
    nothing written) otherwise. MLflow's tracking URI is set. ``export.json`` is logged to the
    model's run without reopening it."""
    if "://" in out:
        raise ValueError(f"--out {out}: a local directory (copy it to object storage afterwards)")
    with tempfile.TemporaryDirectory(prefix="tokenlake-model-") as tmp:
        identity, bundle, _ = resolve_model(model, Path(tmp))
        report = export(bundle, Path(out), quantize=quantize, eval_rows=eval_rows, model=identity)
    if identity["run_id"]:  # added to the run that trained the model, which stays as it ended
        from mlflow import MlflowClient

        client = MlflowClient()
        client.log_dict(identity["run_id"], report, f"export/{Path(out).name}/export.json")
        metrics = {"export_size_ratio": report["size_ratio"], "export_accuracy_delta": report["accuracy_delta"]}
        metrics |= {f"export_latency_ratio_{b}": r for b, r in report["latency_ratio"].items()}
        for key, value in metrics.items():
            client.log_metric(identity["run_id"], key, value)
    return report


def summary(report: dict, out: Path) -> str:
    ratios = ", ".join(f"{b.replace('_', ' ')} {r:.2f}x" for b, r in report["latency_ratio"].items())
    return (
        f"exported to {out}: size {report['size_ratio']:.2f}x smaller, accuracy {report['accuracy']['onnx']:.4f} "
        f"({report['accuracy_delta']:+.4f} against PyTorch on {report['eval_rows']} test rows), latency {ratios} "
        f"faster; {out / 'export.json'}"
    )
