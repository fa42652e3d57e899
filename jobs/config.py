"""Configuration: embedded defaults, then a YAML file, then ``--set section.key=value`` flags,
then the named flags (``--epochs 3``).

A YAML file has one mapping per section (``etl:``, ``train:``) using the dataclass field names.
``--set`` accepts ``etl.max_len=64`` or, when the name is unique, ``max_len=64``; values are
parsed as YAML (``true``, ``1e-3``, ``[0.8, 0.1, 0.1]``). Every error names the key, the value
and, where there is one, the nearest valid name.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tokenlake.etl.config import EtlConfig, did_you_mean
from tokenlake.training.config import TrainConfig

SECTIONS = {"etl": EtlConfig, "train": TrainConfig}
DEFAULT = "default"
DERIVED = "derived"


@dataclass(frozen=True)
class PipelineConfig:
    etl: EtlConfig = field(default_factory=EtlConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self) -> dict:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


@dataclass(frozen=True)
class Resolved:
    """A configuration and where each of its values came from: ``default``, the YAML file's path,
    ``--set``, a flag (``--epochs``) or ``derived`` (from another setting)."""

    config: PipelineConfig
    origins: dict[str, str]
    """``"train.epochs"`` -> origin, for every field."""


def keys() -> list[str]:
    """Every setting as ``section.field``."""
    return [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _unknown(key: str) -> ValueError:
    return ValueError(f"unknown setting {key!r}{did_you_mean(key, keys())}; `tokenlake config show` lists them all")


def _coerce(section: str, key: str, value):
    hints = typing.get_type_hints(SECTIONS[section])
    if key not in hints:
        raise _unknown(f"{section}.{key}")
    kind = hints[key]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[X]: X or None
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    elif value is None:
        raise ValueError(f"{section}.{key} needs a value")
    kind = typing.get_origin(kind) or kind
    try:
        if kind is tuple:
            element = (typing.get_args(hints[key]) or (float,))[0]
            return tuple(element(v) for v in ([value] if isinstance(value, str) else value))
        if kind is bool and not isinstance(value, bool):
            raise ValueError
        if kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
            raise ValueError
        if kind in (int, float, str):
            return kind(value)
    except (TypeError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a number", tuple: "a list"}
        raise ValueError(f"{section}.{key} must be {expected.get(kind, kind.__name__)}, got {value!r}") from None
    return value


def _qualify(key: str) -> tuple[str, str]:
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise _unknown(key)
        return section, name
    owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if not owners:
        raise _unknown(key)
    if len(owners) > 1:
        raise ValueError(f"setting {key!r} is ambiguous; write it as one of {', '.join(f'{s}.{key}' for s in owners)}")
    return owners[0], key


def parse_override(text: str) -> tuple[str, str, object]:
    """``"etl.max_len=64"`` -> ``("etl", "max_len", 64)``."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects key=value, got {text!r}")
    section, name = _qualify(key.strip())
    try:
        return section, name, yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ValueError(f"--set {section}.{name}: {raw!r} is not a value (quote text that holds ':' or '#')") from None


def resolve_config(
    path: str | Path | None = None,
    overrides: typing.Iterable[str] = (),
    flags: dict[str, tuple[str, object]] | None = None,
) -> Resolved:
    """Defaults <- YAML file <- ``--set`` overrides <- named flags (``{"train.epochs": ("--epochs", 3)}``,
    a value of None meaning the flag was not given)."""
    values: dict[str, dict] = {name: {} for name in SECTIONS}
    origins = dict.fromkeys(keys(), DEFAULT)
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
        for section, settings in loaded.items():
            if section not in SECTIONS or not isinstance(settings, dict):
                raise ValueError(
                    f"{path}: top-level keys must be sections {', '.join(SECTIONS)}, got {section!r}"
                    f"{did_you_mean(section, SECTIONS)}"
                )
            for name, value in settings.items():
                values[section][name] = value
                origins[f"{section}.{name}"] = str(path)
    for text in overrides:
        section, name, value = parse_override(text)
        values[section][name] = value
        origins[f"{section}.{name}"] = "--set"
    for key, (flag, value) in (flags or {}).items():
        if value is not None:
            section, name = _qualify(key)
            values[section][name] = value
            origins[f"{section}.{name}"] = flag
    built = {}
    for s, cls in SECTIONS.items():
        coerced = {k: _coerce(s, k, v) for k, v in values[s].items()}
        built[s] = cls(**coerced)
    if built["train"].pretrained and not built["etl"].tokenizer:
        # a warm-started model must see ids from its own tokenizer
        built["etl"] = dataclasses.replace(built["etl"], tokenizer=built["train"].model)
        origins["etl.tokenizer"] = f"{DERIVED} from train.model"
    return Resolved(PipelineConfig(**built), origins)


def load_config(
    path: str | Path | None = None, overrides: typing.Iterable[str] = (), flags: dict[str, object] | None = None
) -> PipelineConfig:
    """Defaults <- YAML file <- ``--set`` overrides <- explicit ``flags`` (``{"train.epochs": 3}``)."""
    named = {key: (key, value) for key, value in (flags or {}).items()}
    return resolve_config(path, overrides, named).config


def check_names(cfg: PipelineConfig) -> None:
    """The model and tokenizer the configuration names are on this machine (nothing is ever
    downloaded): a ``ValueError`` naming the key, the value and the nearest valid name if not."""
    from tokenlake.etl.config import Task, one_of
    from tokenlake.etl.tokenize import PRETRAINED, pretrained_dir
    from tokenlake.training.model import GPT2_SIZES, SIZES

    model = cfg.train.model
    if cfg.etl.task == Task.CAUSAL_LM:
        one_of("train.model", model, GPT2_SIZES)  # a causal LM is trained from scratch
    elif model not in SIZES and model not in PRETRAINED and not (Path(model) / "config.json").is_file():
        raise ValueError(
            f"train.model must be one of {', '.join([*SIZES, *PRETRAINED])} or a checkpoint directory holding "
            f"config.json; got {model!r}{did_you_mean(model, [*SIZES, *PRETRAINED])}"
        )
    for key, name in (("train.model", model if model in PRETRAINED else ""), ("etl.tokenizer", cfg.etl.tokenizer)):
        if name:
            try:
                pretrained_dir(name)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}{did_you_mean(name, PRETRAINED)}") from None
