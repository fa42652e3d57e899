"""Training settings: one frozen dataclass, logged whole to MLflow."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokenlake.etl.config import one_of

if TYPE_CHECKING:
    from tokenlake.etl.gold import GoldCommit
    from tokenlake.training.privacy import PrivacyPlan

# Peak learning rates that train each size well from scratch on a few thousand documents.
DEFAULT_LR = {"tiny": 3e-3, "small": 1e-3, "base": 3e-4}
# Fine-tuning a pretrained encoder: a small one (MiniLM, hidden size under 768) takes a higher rate
# than a BERT-base-sized one, whose usual 2e-5..5e-5 would leave a small one short of where it can go
# in a few epochs.
PRETRAINED_LR = {"small": 1e-4, "base": 3e-5}
# Global batches (over every rank): fine-tuning takes smaller ones, so that a few thousand documents
# still give it enough steps.
DEFAULT_BATCH = {"scratch": 64, "pretrained": 32}
# Under DP every trained weight takes noise: a pretrained encoder fine-tunes its top layers only,
# at a rate far above fine-tuning's (clipped, noisy gradients; measured in README "Tuning, privacy").
DP_TRAINABLE_LAYERS = 2
DP_PRETRAINED_LR = 3e-3


LINEAGE_SETTINGS = ("model", "epochs", "batch_size", "grad_accum_steps", "num_processes", "dp_epsilon", "dp_delta",
                    "dp_max_grad_norm", "trainable_layers")  # fmt: skip
"""The settings that define what a step is: a checkpoint resumes only under the same ones."""


@dataclass(frozen=True)
class TrainConfig:
    model: str = "tiny"
    """``tiny``, ``small``, ``base`` (from scratch), ``minilm`` or a local checkpoint directory (warm start)."""
    epochs: int = 3
    """Passes over the training split (each rank runs the same number of steps per epoch)."""
    batch_size: int | None = None
    """Samples per optimizer step over all ranks (each rank takes ``batch_size / num_processes``),
    so that a step is the same whatever the number of processes; unset: 64 from scratch, 32
    fine-tuning a pretrained encoder (``DEFAULT_BATCH``, rounded down to a multiple of the processes)."""
    eval_batch_size: int = 256
    """Samples per rank per evaluation batch."""
    lr: float | None = None
    """Peak AdamW learning rate after warm-up; unset: by model (``DEFAULT_LR``, ``PRETRAINED_LR``)."""
    weight_decay: float = 0.01
    """AdamW weight decay; never applied to biases and norm weights."""
    warmup_ratio: float = 0.1
    """Fraction of all steps spent warming up linearly; the rest decays on a cosine."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm (0 turns clipping off)."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step."""
    mixed_precision: str = "auto"
    """``auto`` (bf16 on CUDA that supports it, off on CPU), ``no``, ``bf16`` or ``fp16`` (CUDA)."""
    grad_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    seed: int = 42
    """Seeds model initialisation and data order."""
    num_processes: int = 2
    """DDP processes (TorchDistributor ``num_processes``)."""
    local_mode: bool = True
    """Run the processes on the driver (True) or in barrier tasks on executors (False)."""
    use_gpu: bool = False
    """Train on GPUs (NCCL) instead of CPUs (gloo)."""
    collective_timeout_s: int = 300
    """A collective waiting longer than this fails (a dead peer gives an error, not a hang)."""
    bucket_batches: int = 16
    """Length bucketing: sort rows by length within pools of this many batches (1: off)."""
    reader_workers: int = 1
    """Petastorm reader threads per rank. With 1 the order of the training rows is a function of
    the seed alone, which makes runs repeatable and resume exact; more threads read faster but
    deliver row groups in whatever order they finish."""
    checkpoint_steps: int = 200
    """Also checkpoint every this many optimizer steps (0: at epoch ends only), under WORK/checkpoints."""
    resume: bool = False
    """Continue from the latest checkpoint (same gold version and step-defining settings) instead of starting over."""
    early_stopping_patience: int = 0
    """Stop when validation loss has not improved for this many epochs (0: train every epoch).
    The model kept is the last one trained; the report says ``stopped_early`` and ``best_epoch``."""
    early_stopping_min_delta: float = 0.0
    """An improvement of validation loss smaller than this does not count."""
    baseline: bool = True
    """Also train the MLlib TF-IDF + logistic regression baseline on the same splits (classification)."""
    registered_model: str = "tokenlake"
    """The MLflow registered model each classifier is registered to (alias ``candidate``; ``champion``
    if it beats the baseline and the current champion)."""
    gate_rows: int = 10_000
    """Test rows of silver on which a candidate and the current champion are both scored."""
    dropout: float | None = None
    """Dropout of the hidden layers and attention probabilities; unset: the model's own (0.1)."""
    trainable_layers: int | None = None
    """Fine-tune only the top N layers of a pretrained encoder, with its pooler and classification
    head; its embeddings and lower layers keep their pretrained weights. Unset: every layer, or
    ``DP_TRAINABLE_LAYERS`` under DP (``top_layers``)."""
    dp_epsilon: float | None = None
    """Train with differential privacy (DP-SGD through Opacus) to this ε; unset: no DP."""
    dp_delta: float | None = None
    """δ of the DP guarantee; unset: 1 / the training rows."""
    dp_max_grad_norm: float = 1.0
    """Under DP, each sample's gradient is clipped to this norm before the noise is added."""
    fairness_group: str | None = None
    """``meta.<field>``: after the test evaluation, accuracy, macro F1 and selection rate per value
    of that field of silver's ``meta`` (Fairlearn), in the report and MLflow (classification)."""
    fairness_min_rows: int = 30
    """Groups with fewer test rows than this are merged into ``other``."""
    fairness_positive_label: str | None = None
    """The label whose share of predictions is a group's selection rate; unset: the last of gold's labels."""

    def __post_init__(self) -> None:
        if not self.registered_model.strip():
            raise ValueError("train.registered_model must be a name")
        if not self.model:
            raise ValueError("train.model must be tiny, small, base, minilm or a checkpoint directory")
        one_of("train.mixed_precision", self.mixed_precision, ("auto", "no", "bf16", "fp16"))
        for name in (
            "epochs",
            "global_batch",
            "eval_batch_size",
            "grad_accum_steps",
            "num_processes",
            "collective_timeout_s",
            "reader_workers",
            "bucket_batches",
            "gate_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_steps", "early_stopping_patience", "early_stopping_min_delta"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size % self.num_processes:
            raise ValueError(
                f"train.batch_size is the batch over all ranks: {self.batch_size} does not split evenly over "
                f"{self.num_processes} processes (train.num_processes); use a multiple of it"
            )
        self._check_optional_settings()
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if (self.lr is not None and self.lr <= 0) or self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError(
                f"train.lr must be > 0, train.weight_decay and train.max_grad_norm >= 0; got {self.lr}, "
                f"{self.weight_decay}, {self.max_grad_norm}"
            )

    def _check_optional_settings(self) -> None:
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"train.dropout must be in [0, 1), got {self.dropout}")
        if self.dp_epsilon is not None:
            if self.dp_epsilon <= 0 or self.dp_max_grad_norm <= 0:
                raise ValueError("train.dp_epsilon and train.dp_max_grad_norm must be > 0")
            if self.dp_delta is not None and not 0 < self.dp_delta < 1:
                raise ValueError(f"train.dp_delta must be in (0, 1), got {self.dp_delta}")
            if self.grad_accum_steps != 1 or self.mixed_precision == "fp16":
                raise ValueError("train.dp_epsilon needs train.grad_accum_steps=1 and no fp16 (Opacus clips each "
                                 "sample's gradient in full precision, one batch per step)")  # fmt: skip
        if self.trainable_layers is not None:
            if not self.pretrained:
                raise ValueError(f"train.trainable_layers freezes the lower layers of a pretrained encoder; "
                                 f"{self.model!r} trains from scratch")  # fmt: skip
            layers = pretrained_config(self.model).get("num_hidden_layers")
            if self.trainable_layers < 0 or (layers is not None and self.trainable_layers > layers):
                raise ValueError(f"train.trainable_layers must be in [0, {layers}] for {self.model!r}, got "
                                 f"{self.trainable_layers}")  # fmt: skip
        if self.fairness_group is not None and not (
            self.fairness_group.startswith("meta.") and len(self.fairness_group) > len("meta.")
        ):
            raise ValueError(f"train.fairness_group must be meta.<field>, got {self.fairness_group!r}")
        if self.fairness_min_rows < 1:
            raise ValueError(f"train.fairness_min_rows must be >= 1, got {self.fairness_min_rows}")

    @property
    def peak_lr(self) -> float:
        """``lr`` if set, else the model's default: by size from scratch, by family fine-tuning, and
        ``DP_PRETRAINED_LR`` fine-tuning under DP."""
        if self.lr is not None:
            return self.lr
        if self.model in DEFAULT_LR:
            return DEFAULT_LR[self.model]
        if self.dp_fine_tuning:
            return DP_PRETRAINED_LR
        return PRETRAINED_LR["base" if pretrained_config(self.model).get("hidden_size", 768) >= 768 else "small"]

    @property
    def top_layers(self) -> int | None:
        """The encoder layers fine-tuned below the head: ``trainable_layers`` if set, else
        ``DP_TRAINABLE_LAYERS`` under DP with a pretrained encoder, else None (every layer)."""
        if self.trainable_layers is not None:
            return self.trainable_layers
        return DP_TRAINABLE_LAYERS if self.dp_fine_tuning else None

    @property
    def dp_fine_tuning(self) -> bool:
        """DP on a pretrained encoder: its own defaults for the rate and the layers trained."""
        return self.dp_epsilon is not None and self.pretrained

    @property
    def global_batch(self) -> int:
        """``batch_size`` if set, else the default for training from scratch or fine-tuning (rounded
        down to a multiple of ``num_processes``)."""
        if self.batch_size is not None:
            return self.batch_size
        default = DEFAULT_BATCH["pretrained" if self.pretrained else "scratch"]
        return max(self.num_processes, default - default % self.num_processes)

    @property
    def rank_batch(self) -> int:
        """Samples per rank per step."""
        return self.global_batch // self.num_processes

    def lineage(self, gold: dict) -> dict:
        """What a checkpoint must share with the run that resumes it: the data and every setting
        that defines what a step is."""
        return {
            "gold_path": gold["path"],
            "gold_version": gold["version"],
            **{k: getattr(self, k) for k in LINEAGE_SETTINGS},
            "batch_size": self.global_batch,  # the batch used, whether set or by default
            "trainable_layers": self.top_layers,  # the optimizer's state covers these layers' weights
        }

    @property
    def pretrained(self) -> bool:
        return self.model not in DEFAULT_LR


@functools.cache  # peak_lr asks for it several times a command; the file does not change meanwhile
def pretrained_config(model: str) -> dict:
    """A pretrained encoder's ``config.json`` (``minilm`` or a checkpoint directory); empty when it
    cannot be read (then the model fails to load where it is built, with the reason)."""
    import json

    from tokenlake.etl.tokenize import pretrained_dir

    try:
        config = Path(model) / "config.json"
        if not config.is_file():
            config = pretrained_dir(model) / "config.json"
        return dict(json.loads(config.read_text()))
    except (OSError, ValueError, TypeError):
        return {}


@dataclass(frozen=True)
class GoldData:
    """What a gold version defines for the model trained on it (read from its commit)."""

    task: str
    labels: list[str]
    """Label names, in gold's label-id order (empty for a causal LM)."""
    vocab_size: int
    max_len: int

    @classmethod
    def of_commit(cls, commit: GoldCommit) -> GoldData:
        return cls(commit.task, list(commit.labels), commit.vocab_size, commit.max_len)


@dataclass(frozen=True)
class TrainSpec:
    """What every rank's ``train_fn`` gets (``training.launch.training_spec`` makes it): the train
    config, what the gold version defines and where the run writes."""

    train: TrainConfig
    task: str
    labels: list[str]
    """Label names, in gold's label-id order (empty for a causal LM)."""
    vocab_size: int
    max_len: int
    train_rows: int
    model_dir: str
    checkpoint_dir: str
    lineage: dict
    """What a checkpoint must share with a run that resumes it (``TrainConfig.lineage``)."""
    failure_dir: str
    """Where a rank that fails writes its error (``rank-N.txt``), for the driver to report."""
    resume_from: str | None = None
    mlflow_run_id: str | None = None
    privacy: PrivacyPlan | None = None
    """DP-SGD's noise and budget (``train.dp_epsilon``), planned on the driver."""
    trial: dict | None = None
    """An Optuna trial this run is (``{"storage", "study", "trial_id"}``): rank 0 reports each
    epoch's validation loss to it, and every rank stops when it is pruned."""
