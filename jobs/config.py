"""Configuration: embedded defaults, then a YAML file, then ``--set section.key=value`` flags.

A YAML file has one mapping per section (``etl:``, ``train:``) using the dataclass field names.
``--set`` accepts ``etl.max_len=64`` or, when the name is unique, ``max_len=64``; values are
parsed as YAML (``true``, ``1e-3``, ``[0.8, 0.1, 0.1]``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from etl.config import EtlConfig
from training.config import TrainConfig

SECTIONS = {"etl": EtlConfig, "train": TrainConfig}


@dataclass(frozen=True)
class PipelineConfig:
    etl: EtlConfig = field(default_factory=EtlConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def as_dict(self) -> dict:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


def _coerce(section: str, key: str, value):
    hints = typing.get_type_hints(SECTIONS[section])
    if key not in hints:
        raise ValueError(f"unknown setting {section}.{key}; known: {', '.join(sorted(hints))}")
    kind = hints[key]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):  # Optional[X]: X or None
        if value is None:
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    elif value is None:
        raise ValueError(f"{section}.{key} needs a value")
    kind = typing.get_origin(kind) or kind
    if kind is tuple:
        return tuple(float(v) for v in value)
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{section}.{key} must be true or false, got {value!r}")
    if kind in (int, float, str):
        return kind(value)
    return value


def _qualify(key: str) -> tuple[str, str]:
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ValueError(f"unknown config section {section!r} in {key!r}; known: {', '.join(SECTIONS)}")
        return section, name
    owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in dataclasses.fields(cls)}]
    if len(owners) != 1:
        raise ValueError(f"setting {key!r} is {'ambiguous' if owners else 'unknown'}; write it as section.key")
    return owners[0], key


def parse_override(text: str) -> tuple[str, str, object]:
    """``"etl.max_len=64"`` -> ``("etl", "max_len", 64)``."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set expects key=value, got {text!r}")
    section, name = _qualify(key.strip())
    return section, name, yaml.safe_load(raw)


def load_config(
    path: str | Path | None = None, overrides: typing.Iterable[str] = (), flags: dict[str, object] | None = None
) -> PipelineConfig:
    """Defaults <- YAML file <- ``--set`` overrides <- explicit CLI ``flags`` (``"train.epochs": 3``)."""
    values: dict[str, dict] = {name: {} for name in SECTIONS}
    if path:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        for section, settings in loaded.items():
            if section not in SECTIONS or not isinstance(settings, dict):
                raise ValueError(f"{path}: top-level keys must be sections {list(SECTIONS)}, got {section!r}")
            values[section].update(settings)
    for text in overrides:
        section, name, value = parse_override(text)
        values[section][name] = value
    for key, value in (flags or {}).items():
        if value is not None:
            section, name = _qualify(key)
            values[section][name] = value
    built = {s: SECTIONS[s](**{k: _coerce(s, k, v) for k, v in values[s].items()}) for s in SECTIONS}
    if built["train"].pretrained and not built["etl"].tokenizer:
        # a warm-started model must see ids from its own tokenizer
        built["etl"] = dataclasses.replace(built["etl"], tokenizer=built["train"].model)
    return PipelineConfig(**built)
