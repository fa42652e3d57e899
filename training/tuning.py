"""Hyperparameter search with Optuna, without Spark: the search space (``--space`` YAML), the
sampler and pruner, and what rank 0 of a trial's training does after each epoch (``report_epoch``).

A space file names ``train.*`` fields (without the prefix)::

    params:
      lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # float; ints give suggest_int
      batch_size: {choices: [16, 32, 64]}
    enqueue:                                       # tried first, in order (the defaults, say)
      - {lr: 3.0e-3, batch_size: 32}
    pruner: {startup_trials: 3, warmup_epochs: 1}  # MedianPruner on each epoch's validation loss
    sampler: {seed: 42}                            # TPE
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from tokenlake.training.config import TrainConfig

SPACE_KEYS = ("params", "enqueue", "pruner", "sampler")
PRUNER_DEFAULTS = {"startup_trials": 3, "warmup_epochs": 1}
SAMPLER_DEFAULTS = {"seed": 42}


def default_space(cfg: TrainConfig) -> dict:
    """Learning rate around the model's default (from a tenth to three times it), warm-up, weight decay, batch size and
    dropout; the current settings are the first trial, so the search never ends below them."""
    lr = cfg.peak_lr
    return {
        "params": {
            "lr": {"low": lr / 10, "high": lr * 3, "log": True},
            "warmup_ratio": {"low": 0.0, "high": 0.2},
            "weight_decay": {"low": 0.0, "high": 0.1},
            "batch_size": {"choices": sorted({b for b in (16, 32, 64, 128) if b % cfg.num_processes == 0}
                                             | {cfg.global_batch})},
            "dropout": {"low": 0.0, "high": 0.3},
        },
        "enqueue": [{"lr": lr, "warmup_ratio": cfg.warmup_ratio, "weight_decay": cfg.weight_decay,
                     "batch_size": cfg.global_batch, "dropout": 0.1 if cfg.dropout is None else cfg.dropout}],
        "pruner": dict(PRUNER_DEFAULTS),
        "sampler": dict(SAMPLER_DEFAULTS),
    }  # fmt: skip


def load_space(path: str | Path | None, cfg: TrainConfig) -> dict:
    """The search space: ``default_space`` or the YAML file ``path``, checked (a ``ValueError``
    names what is wrong)."""
    if path is None:
        return default_space(cfg)
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"--space {path} is not YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise ValueError(f"--space {path}: needs a params: mapping of train fields to ranges")
    unknown = set(raw) - set(SPACE_KEYS)
    if unknown:
        raise ValueError(f"--space {path}: unknown section(s) {sorted(unknown)}; known: {list(SPACE_KEYS)}")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name, spec in raw["params"].items():
        if name not in fields:
            raise ValueError(f"--space {path}: {name!r} is not a train setting (tokenlake config show lists them)")
        if not isinstance(spec, dict) or not ("choices" in spec or {"low", "high"} <= set(spec)):
            raise ValueError(f"--space {path}: {name} needs choices: [...] or low: and high:")
    space = {
        "params": raw["params"],
        "enqueue": raw.get("enqueue") or [],
        "pruner": {**PRUNER_DEFAULTS, **(raw.get("pruner") or {})},
        "sampler": {**SAMPLER_DEFAULTS, **(raw.get("sampler") or {})},
    }
    for trial in space["enqueue"]:
        if not isinstance(trial, dict) or set(trial) - set(space["params"]):
            raise ValueError(f"--space {path}: an enqueue entry may set only the params' fields, got {trial!r}")
    return space


def suggest(trial, params: dict) -> dict:
    """One value per parameter of the space, drawn by ``trial``."""
    values = {}
    for name, spec in params.items():
        if "choices" in spec:
            values[name] = trial.suggest_categorical(name, list(spec["choices"]))
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=bool(spec.get("log")))  # fmt: skip
    return values


def make_pruner(settings: dict):
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=int(settings["startup_trials"]),
                                       n_warmup_steps=int(settings["warmup_epochs"]))  # fmt: skip


def make_sampler(settings: dict):
    import optuna

    return optuna.samplers.TPESampler(seed=settings.get("seed"))


def report_epoch(trial: dict, epoch: int, val_loss: float) -> bool:
    """On rank 0 of a trial's training: report ``val_loss`` at ``epoch`` to the study in
    ``trial["storage"]``; whether the pruner stops the trial."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=trial["study"], storage=trial["storage"],
                              pruner=make_pruner(trial["pruner"]))  # fmt: skip
    handle = optuna.trial.Trial(study, trial["trial_id"])
    handle.report(val_loss, epoch)
    return handle.should_prune()
