"""The `ppad` command: one entry point, one subcommand per stage of the model's life cycle."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def _describe_model(model, config, fused_params: int, macs: int) -> dict[str, Any]:
    head = model.head
    parts = {
        "backbone": model.backbone,
        "hybrid_encoder": model.encoder,
        "detection_decoder": [head.input_proj, head.detector],
        "gca": [head.det_gca, head.seg_gca],
        "segmentation_decoder": head.segmenter,
    }

    def count(modules) -> int:
        modules = modules if isinstance(modules, list) else [modules]
        return sum(p.numel() for m in modules for p in m.parameters())

    return {
        "name": config.name,
        "input_size": list(config.input_size),
        "class_names": config.class_names,
        "seg_names": config.seg_names,
        "seg_thresholds": config.seg_thresholds,
        "parameters": {
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "fused": fused_params,
            "by_part": {name: count(m) for name, m in parts.items()},
        },
        "macs": macs,
    }


def _time_forward(model, input_size, runs: int) -> dict[str, float]:
    image = torch.rand(1, 3, *input_size)
    times = []
    with torch.inference_mode():
        model(image)  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            model(image)
            times.append((time.perf_counter() - start) * 1000)
    return {
        "runs": runs,
        "threads": torch.get_num_threads(),
        "median_ms": statistics.median(times),
        "min_ms": min(times),
    }


def cmd_info(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import load_checkpoint
    from ppad_core.model.complexity import count_macs, count_parameters
    from ppad_core.model.config import resolve_model_config
    from ppad_core.model.fusion import fuse_model
    from ppad_core.model.rmt_ppad import build_model

    target = Path(args.target)
    provenance = None
    if (target / "model.yaml").is_file():
        model, meta = load_checkpoint(target)
        config, provenance = model.config, meta.get("provenance")
    else:
        config = resolve_model_config(args.target)
        model = build_model(config).eval()
    fused = fuse_model(model)
    info = _describe_model(model, config, count_parameters(fused), count_macs(fused, config.input_size))
    if provenance:
        info["provenance"] = provenance
    if args.latency:
        info["latency_fused_fp32"] = _time_forward(fused, config.input_size, args.latency)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    table = Table(title=f"{config.name}  (input {config.input_size[0]}x{config.input_size[1]})")
    table.add_column("item")
    table.add_column("value", justify="right")
    params = info["parameters"]
    for part, n in params["by_part"].items():
        table.add_row(f"params: {part}", f"{n:,}")
    table.add_row("params: trainable total", f"{params['trainable']:,}")
    table.add_row("params: after fusion", f"{params['fused']:,}")
    table.add_row("MACs (fused)", f"{info['macs'] / 1e9:.2f} G")
    table.add_row("classes", ", ".join(config.class_names))
    table.add_row("seg thresholds", ", ".join(f"{n}={t}" for n, t in zip(config.seg_names, config.seg_thresholds)))
    if provenance:
        table.add_row("provenance", ", ".join(f"{k}={v}" for k, v in provenance.items()))
    if args.latency:
        lat = info["latency_fused_fp32"]
        table.add_row(
            f"forward latency (median of {lat['runs']}, {lat['threads']} threads)", f"{lat['median_ms']:.1f} ms"
        )
    Console().print(table)
    return 0


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
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        table = Table(title="imported official RMT-PPAD checkpoint")
        table.add_column("item")
        table.add_column("value")
        table.add_row("written to", summary["output"])
        table.add_row("tensors mapped", str(summary["tensors"]))
        table.add_row("parameters", f"{summary['parameters']:,}")
        for key, value in provenance.items():
            table.add_row(key, str(value))
        Console().print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppad",
        description="RMT-PPAD multi-task perception (vehicles, drivable area, lane lines): model life-cycle tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser(
        "info",
        help="architecture summary: parameters (trainable and fused), MACs, classes, thresholds",
        description="Summarise a model: a shipped config name (rmt_ppad_l, rmt_ppad_s), a config YAML or a "
        "checkpoint directory. Parameters are counted before and after inference fusion (Conv+BN folding, "
        "RepConv merging); MACs are for one fused forward at the configured input size.",
    )
    info.add_argument("target", help="config name, config YAML or checkpoint directory")
    info.add_argument(
        "--latency", type=int, default=0, metavar="RUNS", help="also time RUNS fused forwards on a random image"
    )
    info.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    info.set_defaults(func=cmd_info)

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
    imp.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    imp.set_defaults(func=cmd_import_official)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
