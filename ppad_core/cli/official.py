"""`ppad import-official`: an official RMT-PPAD best.pt converted into a ppad checkpoint, no pickled code run."""

from __future__ import annotations

import argparse

from ppad_core.cli.common import add_json_flag, console
from ppad_core.cli.output import emit


def register(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser(
        "import-official",
        help="convert an official RMT-PPAD best.pt into a ppad checkpoint (no pickled code is run)",
        description="Read a checkpoint written by the official RMT-PPAD code with a restricted unpickler "
        "(tensors and plain containers only; nothing from the file is executed), map every weight to this "
        "package's names (any missing or unexpected key is an error) and write OUT_DIR/model.safetensors "
        "and OUT_DIR/model.yaml.",
    )
    imp.add_argument("checkpoint", help="official checkpoint file, e.g. best.pt")
    imp.add_argument("out_dir", help="output checkpoint directory")
    imp.add_argument("--config", default="rmt_ppad_l", help="architecture the weights belong to (default: rmt_ppad_l)")
    add_json_flag(imp)
    imp.set_defaults(func=cmd_import_official)


def cmd_import_official(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import save_checkpoint
    from ppad_core.model.config import resolve_model_config
    from ppad_core.model.official import import_official

    config = resolve_model_config(args.config)
    with console.status(f"reading {args.checkpoint} with the restricted unpickler"):
        model, provenance = import_official(args.checkpoint, config)
    out = save_checkpoint(model, args.out_dir, provenance)
    summary = {
        "output": str(out),
        "tensors": len(model.state_dict()),
        "parameters": sum(p.numel() for p in model.parameters()),
        "provenance": provenance,
    }
    rows = {**{k: v for k, v in summary.items() if k != "provenance"}, **provenance}
    return emit(summary, args.json, "imported official RMT-PPAD checkpoint", rows)
