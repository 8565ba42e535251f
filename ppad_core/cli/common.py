"""Options several `ppad` commands share: --json, --set, the runtime group and the Predictor it configures."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.console import Console

console = Console(stderr=True)

JSON_HELP = "print machine-readable JSON to stdout"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """--json: the command's result as JSON on stdout instead of a table (the same flag in every command)."""
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


class _JsonFlagOrDeprecatedPath(argparse.Action):
    """--json alone is the flag; `--json PATH` is the old spelling of --json-out PATH, still accepted."""

    def __call__(self, parser, namespace, value, option_string=None) -> None:
        if value is None:
            setattr(namespace, self.dest, True)
            return
        print(
            f"{parser.prog}: warning: --json {value} is deprecated, use --json-out {value} "
            "(--json alone prints JSON to stdout)",
            file=sys.stderr,
        )
        namespace.json_out = value


def add_json_options(parser: argparse.ArgumentParser, what: str) -> None:
    """--json (flag) and --json-out FILE, for commands that used to take `--json FILE`."""
    parser.add_argument(
        "--json",
        nargs="?",
        default=False,
        metavar="FILE",
        action=_JsonFlagOrDeprecatedPath,
        help=f"{JSON_HELP} (--json FILE: the deprecated spelling of --json-out FILE)",
    )
    parser.add_argument("--json-out", metavar="FILE", help=f"write {what} as JSON to FILE")


def add_set_option(parser: argparse.ArgumentParser, help: str = "override a config value") -> None:
    """--set KEY=VALUE, repeatable: dotted overrides of a training YAML (see `parse_overrides`)."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help)


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`--set` pairs as {dotted key: YAML-parsed value}."""
    import yaml

    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def _add_runtime_options(
    parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ("input_size",)
) -> None:
    """The runtime flags generated from `RuntimeOptions` (ppad_core/runtime/options.py)."""
    from ppad_core.runtime.options import add_runtime_arguments

    add_runtime_arguments(parser, only, exclude)


def _predictor_from_args(args: argparse.Namespace):
    from ppad_core.runtime.options import RuntimeOptions
    from ppad_core.runtime.predictor import Predictor

    return Predictor.from_checkpoint(args.checkpoint, RuntimeOptions.from_args(args))
