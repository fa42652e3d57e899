"""The logged classifier: raw text in, label names and probabilities out.

MLflow logs this file as a model "from code" (``training.packaging``): nothing is pickled, and it
imports only what its pinned requirements install (no ``tokenlake``), so
``mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"text": [...]}))`` works in any environment
that has them. Its one artifact is a bundle directory::

    bundle/model/        the Hugging Face classifier (safetensors, config.json)
    bundle/tokenizer/    tokenizer.json (and what ``AutoTokenizer`` reads)
    bundle/tokenlake.json  task, label names, max_len, the ETL settings that shaped the training
                           text, the gold version it was trained on

``tokenlake predict`` loads the same bundle in each Spark Python worker (``Classifier.load``),
after cleaning and masking the input as the ETL did; the pyfunc model scores the text it is given.
An ONNX export (``training.export``) is a bundle whose ``model/`` holds ``model.onnx``; ``Classifier``
runs it with ONNX Runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

SETTINGS_FILE = "tokenlake.json"
ONNX_FILE = "model.onnx"


def classifier_settings(bundle: str | Path) -> dict:
    """The bundle's ``tokenlake.json``; ``ValueError`` unless it holds a classifier."""
    settings = json.loads((Path(bundle) / SETTINGS_FILE).read_text())
    if settings["task"] != "classification":
        raise ValueError(f"{bundle} holds a {settings['task']} model; only classifiers predict labels")
    return settings


class Classifier:
    """A bundle in memory: ``probabilities(texts)`` in the label order of ``labels``. ``threads``:
    the threads one forward pass may use (default: the runtime's own choice, about one per core)."""

    def __init__(self, bundle: str | Path, threads: int | None = None):
        from tokenizers import Tokenizer

        bundle = Path(bundle)
        self.settings = classifier_settings(bundle)
        self.labels: list[str] = self.settings["labels"]
        self.max_len: int = self.settings["max_len"]
        self.tokenizer = Tokenizer.from_file(str(bundle / "tokenizer" / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_len)
        self.tokenizer.no_padding()
        onnx = bundle / "model" / ONNX_FILE
        if onnx.is_file():
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            if threads:
                options.intra_op_num_threads = threads
            self.session = onnxruntime.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
            self.model = None
        else:
            import torch
            from transformers import AutoModelForSequenceClassification

            if threads:
                torch.set_num_threads(threads)
            self.session = None
            self.model = AutoModelForSequenceClassification.from_pretrained(str(bundle / "model")).eval()

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``[rows, labels]`` logits of one padded batch (``int64`` ids and attention mask)."""
        if self.session is not None:
            return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
        import torch

        with torch.inference_mode():
            return self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()

    def probabilities(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """``[len(texts), len(labels)]`` softmax probabilities. Texts are encoded as in gold (truncated
        to ``max_len``), batched by length so that a batch pads little, and returned in input order."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        encodings = self.tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        out = np.zeros((len(encodings), len(self.labels)), dtype=np.float32)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(int(lengths[rows].max()), 1)
            ids = np.zeros((len(rows), width), dtype=np.int64)  # padded with 0 and masked, as in training
            for i, row in enumerate(rows):
                ids[i, : lengths[row]] = encodings[row].ids
            mask = (np.arange(width)[None, :] < lengths[rows][:, None]).astype(np.int64)
            logits = self.logits(ids, mask).astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            exp = np.exp(logits)
            out[rows] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def predict_frame(self, texts: list[str], batch_size: int = 32) -> pd.DataFrame:
        """``label``, ``score`` (its probability) and ``prob_<label>`` for each label, one row per text."""
        probs = self.probabilities(texts, batch_size)
        best = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        frame = pd.DataFrame({"label": [self.labels[i] for i in best], "score": probs.max(axis=1, initial=0.0)})
        for i, name in enumerate(self.labels):
            frame[f"prob_{name}"] = probs[:, i]
        return frame


def texts_of(model_input) -> list[str]:
    """The texts of a pyfunc input: a frame's ``text`` column (or its only column), a series or a list."""
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            return model_input["text"].astype(str).tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].astype(str).tolist()
        raise ValueError(f"expected a 'text' column, got {list(model_input.columns)}")
    if isinstance(model_input, pd.Series):
        return model_input.astype(str).tolist()
    return [str(t) for t in model_input]


class TextClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.classifier = Classifier(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        batch_size = int((params or {}).get("batch_size", 32))
        return self.classifier.predict_frame(texts_of(model_input), batch_size)


mlflow.models.set_model(TextClassifier())
