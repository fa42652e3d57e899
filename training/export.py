"""``tokenlake export``: a logged classifier as ONNX, optionally with dynamic int8 quantization
(ONNX Runtime), verified on the test split of the gold version it was trained on before anything
is written.

The output directory is a bundle (``training.text_classifier``) whose ``model/`` holds
``model.onnx``, so ``tokenlake predict`` and ``Classifier`` run it with ONNX Runtime; beside it
``export.json`` says what was measured: ``size_ratio`` (fp32 bytes / exported bytes),
``accuracy_delta`` (exported minus PyTorch, same rows) and ``latency_ratio`` (PyTorch CPU latency /
ONNX Runtime latency at batch 1 and 32, medians)."""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from tokenlake.training.text_classifier import ONNX_FILE, SETTINGS_FILE, Classifier

TARGETS = {"size_ratio": 3.5, "accuracy_delta": -0.01, "latency_ratio": 1.5}
"""Each figure's target (``>=``); ``accuracy_delta`` below its target refuses the export."""
OPSET = 17


class ExportRefused(ValueError):
    """The exported model lost more accuracy than allowed: nothing was written."""


def to_onnx(model_dir: Path, path: Path, max_len: int) -> None:
    """The Hugging Face classifier in ``model_dir`` as an fp32 ONNX graph: ``input_ids`` and
    ``attention_mask`` (int64, batch and sequence dynamic) to ``logits``, optimized and compacted
    (the int8 graph is quantized from this one, so ``size_ratio`` compares the same graph)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    model.config.return_dict = False
    ids = torch.ones((2, min(8, max_len)), dtype=torch.long)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python control flow in the model
        torch.onnx.export(
            model,
            (ids, torch.ones_like(ids)),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    optimize(path)
    compact(path)


def optimize(path: Path) -> None:
    """ONNX Runtime's basic graph optimizations (constant folding, redundant nodes removed; standard
    ONNX operators only, so the graph stays portable), in place: the traced graph computes shapes
    node by node, a sixth of a small model's file."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    optimized = path.with_suffix(".optimized.onnx")
    options.optimized_model_filepath = str(optimized)
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    optimized.replace(path)


def compact(path: Path) -> None:
    """Rewrite the graph at ``path`` with short node and tensor names and no doc strings (inputs and
    outputs keep theirs): the traced names (``/bert/encoder/layer.0/attention/self/MatMul``) are a
    fifth of a small model's file. Both sides of ``size_ratio`` are compacted alike."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in graph.node for a in n.attribute):
        return  # subgraphs refer to outer names: left as they are
    keep = {v.name for v in [*graph.input, *graph.output]}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        return name if not name or name in keep else names.setdefault(name, f"t{len(names)}")

    for i, node in enumerate(graph.node):
        node.name, node.doc_string = f"n{i}", ""
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]
    for tensor in graph.initializer:
        tensor.name = short(tensor.name)
    for info in graph.value_info:
        info.name = short(info.name)
    model.doc_string = ""
    onnx.save(model, str(path))


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of every MatMul and Gather (the embeddings) weight."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a line per tensor it leaves in fp32, and advice
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gather"])  # fmt: skip
    finally:
        root.setLevel(level)
    compact(target)


def test_split(settings: dict, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, mask, labels)`` of the first ``rows`` test rows of the gold version the model was
    trained on, read from its Delta log's files (no Spark), stopping once enough are read."""
    from tokenlake.training.gold_files import first_rows
    from tokenlake.training.gold_reader import pad_rows

    gold = settings["gold"]
    data = first_rows(gold["path"], gold["version"], split="test", columns=["input_ids", "n_tokens", "label"],
                      limit=rows)  # fmt: skip
    if not data["label"]:
        raise ExportRefused(f"gold v{gold['version']} at {gold['path']} has no test rows to verify the export on")
    n_tokens = np.minimum(np.array(data["n_tokens"], dtype=np.int64), settings["max_len"])
    width = max(int(n_tokens.max()), 1)
    flat = np.concatenate([row[:n] for row, n in zip(data["input_ids"], n_tokens, strict=True)])
    ids = pad_rows(flat, n_tokens, width).astype(np.int64)
    mask = (np.arange(width)[None, :] < n_tokens[:, None]).astype(np.int64)
    return ids, mask, np.array(data["label"], dtype=np.int64)


def _accuracy(classifier: Classifier, ids, mask, labels, batch: int = 64) -> float:
    predicted = np.concatenate([classifier.logits(ids[i : i + batch], mask[i : i + batch]).argmax(axis=1)
                                for i in range(0, len(ids), batch)])  # fmt: skip
    return float((predicted == labels).mean())


def _latency_ms(models: dict[str, Classifier], ids, mask, batch: int, repeats: int) -> dict[str, float]:
    """Median milliseconds of one forward pass over ``batch`` test rows for each model, the models
    taking turns (after two warm-up passes each), so that a busy moment hits both."""
    rows = np.resize(np.arange(len(ids)), batch)
    x, m = ids[rows], mask[rows]
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(repeats + 2):
        for name, model in models.items():
            start = time.perf_counter()
            model.logits(x, m)
            if round_ >= 2:
                times[name].append((time.perf_counter() - start) * 1000)
    return {f"{name}_ms": statistics.median(t) for name, t in times.items()}


def export(
    bundle: Path, out: Path, *, quantize: str | None = "int8", eval_rows: int = 2000, repeats: int = 30,
    model: dict | None = None,
) -> dict:  # fmt: skip
    """Export ``bundle`` to the local directory ``out`` (which must not exist or be empty); return
    ``export.json``'s content (``model``: what the bundle was exported from, recorded as given)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty directory: export writes a new one")
    settings = json.loads((bundle / SETTINGS_FILE).read_text())
    ids, mask, labels = test_split(settings, eval_rows)
    with tempfile.TemporaryDirectory(prefix="tokenlake-export-") as tmp:
        staged = Path(tmp) / "bundle"
        shutil.copytree(bundle, staged, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
        fp32 = Path(tmp) / "model-fp32.onnx"
        to_onnx(bundle / "model", fp32, settings["max_len"])
        if quantize == "int8":
            quantize_int8(fp32, staged / "model" / ONNX_FILE)
        else:
            shutil.copy(fp32, staged / "model" / ONNX_FILE)
        reference, exported = Classifier(bundle), Classifier(staged)
        torch_bytes = sum(p.stat().st_size for p in (bundle / "model").glob("*.safetensors"))
        onnx_bytes = (staged / "model" / ONNX_FILE).stat().st_size
        accuracy = {"pytorch": _accuracy(reference, ids, mask, labels), "onnx": _accuracy(exported, ids, mask, labels)}
        pair = {"pytorch": reference, "onnx": exported}
        latency = {f"batch_{b}": _latency_ms(pair, ids, mask, b, repeats) for b in (1, 32)}
        report = {
            "format": "onnx",
            "quantize": quantize,
            "opset": OPSET,
            "size_ratio": fp32.stat().st_size / onnx_bytes,
            "bytes": {"fp32_onnx": fp32.stat().st_size, "pytorch_safetensors": torch_bytes, "exported": onnx_bytes},
            "accuracy": accuracy,
            "accuracy_delta": accuracy["onnx"] - accuracy["pytorch"],
            "eval_rows": len(labels),
            "gold": settings["gold"],
            "latency": latency,
            "latency_ratio": {b: v["pytorch_ms"] / v["onnx_ms"] for b, v in latency.items()},
            "targets": TARGETS,
            "model": model,
        }
        report["met"] = {
            "size_ratio": report["size_ratio"] >= TARGETS["size_ratio"],
            "accuracy_delta": report["accuracy_delta"] >= TARGETS["accuracy_delta"],
            "latency_ratio": all(r >= TARGETS["latency_ratio"] for r in report["latency_ratio"].values()),
        }
        if not report["met"]["accuracy_delta"]:
            raise ExportRefused(
                f"the {quantize or 'fp32'} export scores {accuracy['onnx']:.4f} on {len(labels)} test rows against "
                f"PyTorch's {accuracy['pytorch']:.4f} (delta {report['accuracy_delta']:+.4f}, allowed "
                f"{TARGETS['accuracy_delta']}); nothing was written"
            )
        (staged / "export.json").write_text(json.dumps(report, indent=2) + "\n")
        out.mkdir(parents=True, exist_ok=True)
        for item in staged.iterdir():
            shutil.move(str(item), str(out / item.name))
    return report
