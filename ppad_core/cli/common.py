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


def _add_runtime_options(parser: argparse.ArgumentParser, resize: bool = True) -> None:
    from ppad_core.runtime.backends import BACKENDS, PRECISIONS

    group = parser.add_argument_group("runtime")
    group.add_argument("--backend", choices=BACKENDS, default="torch", help="inference backend (default torch)")
    group.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    group.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="fp32; bf16 (CPUs with AVX512-BF16/AMX) or fp16 (CUDA) with torch; int8 with onnxruntime",
    )
    group.add_argument("--channels-last", action="store_true", help="torch: NHWC memory layout (faster convs)")
    group.add_argument(
        "--cuda-graph",
        action="store_true",
        help="torch on CUDA: capture the forward once per input shape and replay it (removes per-kernel launch cost)",
    )
    if resize:
        group.add_argument(
            "--resize",
            choices=("stretch", "letterbox"),
            default="stretch",
            help="stretch (the paper's protocol, default) or aspect-preserving letterbox",
        )


def _predictor_from_args(args: argparse.Namespace, **kwargs):
    from ppad_core.runtime.predictor import Predictor

    return Predictor.from_checkpoint(
        args.checkpoint,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        cuda_graph=args.cuda_graph,
        **kwargs,
    )
