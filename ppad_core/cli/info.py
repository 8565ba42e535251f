"""`ppad info`: parameters per part (trainable and fused), MACs, classes, thresholds, provenance, latency."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

from ppad_core.cli.common import add_json_flag
from ppad_core.cli.output import emit


def register(sub: argparse._SubParsersAction) -> None:
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
    add_json_flag(info)
    info.set_defaults(func=cmd_info)


def cmd_info(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import load_or_build
    from ppad_core.model.complexity import count_macs, count_parameters
    from ppad_core.model.fusion import fuse_model

    model, meta = load_or_build(args.target)
    config, provenance = model.config, (meta or {}).get("provenance")
    fused = fuse_model(model)
    info = _describe_model(model, config, count_parameters(fused), count_macs(fused, config.input_size))
    if provenance:
        info["provenance"] = provenance
    if args.latency:
        info["latency_fused_fp32"] = _time_forward(fused, config.input_size, args.latency)
    title = f"{config.name}  (input {config.input_size[0]}x{config.input_size[1]})"
    return emit(info, args.json, title, _table_rows(info, config))


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
    from ppad_core.model.complexity import forward_times_ms

    times = forward_times_ms(model, input_size, runs)
    return {
        "runs": runs,
        "threads": torch.get_num_threads(),
        "median_ms": statistics.median(times),
        "min_ms": min(times),
    }


def _table_rows(info: dict[str, Any], config) -> dict[str, str]:
    """The summary as the table's rows: counts with thousands separators, MACs in G, latency in ms."""
    params = info["parameters"]
    rows = {f"params: {part}": f"{n:,}" for part, n in params["by_part"].items()}
    rows["params: trainable total"] = f"{params['trainable']:,}"
    rows["params: after fusion"] = f"{params['fused']:,}"
    rows["MACs (fused)"] = f"{info['macs'] / 1e9:.2f} G"
    rows["classes"] = ", ".join(config.class_names)
    rows["seg thresholds"] = ", ".join(f"{n}={t}" for n, t in zip(config.seg_names, config.seg_thresholds))
    if "provenance" in info:
        rows["provenance"] = ", ".join(f"{k}={v}" for k, v in info["provenance"].items())
    if "latency_fused_fp32" in info:
        lat = info["latency_fused_fp32"]
        rows[f"forward latency (median of {lat['runs']}, {lat['threads']} threads)"] = f"{lat['median_ms']:.1f} ms"
    return rows
