"""How every `ppad` command ends: its result as JSON on stdout (--json), or as a table for a person."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ppad_core.cli.common import console


def print_table(title: str, values: Mapping[str, Any]) -> None:
    """A two-column item/value table on stdout."""
    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, str(value))
    Console().print(table)


def emit(summary: Mapping[str, Any], as_json: bool, title: str | None = None, rows: Mapping | None = None) -> int:
    """Print `summary` as JSON (--json), else `rows` (default: the summary) as a table titled `title`
    (no table without a title); returns the exit status 0."""
    if as_json:
        print(json.dumps(summary, indent=2, default=float))
    elif title is not None:
        print_table(title, summary if rows is None else rows)
    return 0


def write_json(path: str | Path, data: Any) -> None:
    """Write `data` as indented JSON to `path` (--json-out) and say so on stderr."""
    Path(path).write_text(json.dumps(data, indent=2))
    console.print(f"wrote {path}")
