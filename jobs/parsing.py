"""How a ``tokenlake`` flag is parsed and traced to the config key it sets.

A flag that sets a config field is declared with ``setting``: its help shows the field's default,
and ``settings_of`` hands the values given to ``jobs.config.resolve_config`` with the flag's name,
so that ``tokenlake config show`` can say where each value came from. ``Parser`` takes no
abbreviated flag and names the nearest known one when a flag is unknown.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib

SETTINGS: dict[str, str] = {}
"""dest -> config key of every flag declared with ``setting``."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def resolve_args(args: argparse.Namespace):
    """The configuration ``args`` resolve to, with each value's origin (``jobs.config.Resolved``)."""
    from tokenlake.jobs.config import resolve_config

    return resolve_config(args.config, args.set, settings_of(args))


def config_from_args(args: argparse.Namespace):
    return resolve_args(args).config


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines); each flag's default shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """No abbreviated flags (``--epoch`` is not ``--epochs``); an unknown flag is reported under
    its subcommand's usage with the nearest known flag."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            owner = self._subcommand_parser(parsed) or self
            known = {o.lstrip("-"): o for action in owner._actions for o in action.option_strings if o.startswith("--")}
            hint = ""
            if extra[0].startswith("--"):  # compared without the dashes, which every flag shares
                close = difflib.get_close_matches(extra[0].split("=")[0].lstrip("-"), known, n=1, cutoff=0.6)
                hint = f" (did you mean {known[close[0]]}?)" if close else ""
            owner.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
        return parsed

    def _subcommand_parser(self, parsed: argparse.Namespace) -> Parser | None:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(chosen, Parser):
                    return chosen._subcommand_parser(parsed) or chosen
        return None


def config_default(key: str) -> object:
    from tokenlake.jobs.config import SECTIONS

    section, name = key.split(".")
    field = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    return field.default


def setting(p: argparse.ArgumentParser, flag: str, key: str, help: str, **kwargs) -> None:
    """A flag that sets config field ``key``; not given, it leaves the config's value."""
    dest = flag.removeprefix("--").replace("-", "_")
    SETTINGS[dest] = key
    shown = config_default(key)
    p.add_argument(flag, dest=dest, default=None, help=f"{help} [{key}; default: {shown}]", **kwargs)


def settings_of(args: argparse.Namespace) -> dict[str, tuple[str, object]]:
    """The config values the flags in ``args`` set: ``{"train.epochs": ("--epochs", 3)}``."""
    return {key: (f"--{dest.replace('_', '-')}", getattr(args, dest)) for dest, key in SETTINGS.items()
            if hasattr(args, dest)}  # fmt: skip
