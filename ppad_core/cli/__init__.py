"""The `ppad` command: one entry point, one sub-command per stage of the model's life cycle.

Each stage module registers its sub-commands next to their handlers (`register(subparsers)`); this module
only assembles the parser and maps the expected failures to exit status 2.
"""

from __future__ import annotations

import argparse

from ppad_core.cli import compress, data, evaluate, info, official, runtime, train
from ppad_core.cli.common import console

STAGES = (info, official, data, train, evaluate, runtime, compress)  # the order `ppad --help` lists them in


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppad",
        description="RMT-PPAD multi-task perception (vehicles, drivable area, lane lines): model life-cycle tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for stage in STAGES:
        stage.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ppad_core.runtime.allocator import configure_allocator

    try:
        configure_allocator()  # PPAD_ALLOCATOR (tuned unless it says default), before any model is built
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
