"""Splitting an OpenVINO model of ppad's ONNX export where its fp32 part begins, so that the openvino backend
(`ppad_core/runtime/backends.py`, precision bf16) runs the convolutional trunk in bf16 and the detection decoder
in fp32, the same split the torch backend's autocast makes (`FLOAT32_MODULE` there).

OpenVINO's CPU plugin takes one inference precision per compiled model, and its per-operation opt-out
(`ov::disable_fp16_compression`) is a C++ runtime attribute that the Python API cannot set. Two compiled
models, the trunk compiled with a bf16 hint and the head with an f32 one, give the same split with public API
only: the trunk's outputs are the head's inputs (the detection decoder's flattened feature maps, a few hundred
kB at batch 1).
"""

from __future__ import annotations

from dataclasses import dataclass


def onnx_scope(module: str) -> str:
    """The prefix of the ONNX node names of one of the network's modules (a dotted path, `head.detector`) in a file
    that `export_onnx` wrote: the exporter names nodes by module path, under `_OutputTuple`'s attribute `model`
    (ppad_core/runtime/export.py)."""
    return "/model/" + module.replace(".", "/") + "/"


@dataclass
class SplitModel:
    """`trunk` computes `handoff` tensors that `head` takes as its parameters, in that order; each of the original
    outputs is a result of exactly one of the two."""

    trunk: object  # openvino.Model
    head: object  # openvino.Model
    handoff: int


def _constant_ids(ops: list) -> set[int]:
    """Operations computed from constants alone (weights reshaped or converted before constant folding)."""
    ids: set[int] = set()
    for op in ops:
        inputs = [value.get_node().get_instance_id() for value in op.input_values()]
        if op.get_type_name() == "Constant" or (op.get_type_name() != "Parameter" and inputs and set(inputs) <= ids):
            ids.add(op.get_instance_id())
    return ids


def _fold_static_shapes(model) -> None:
    """Every ShapeOf of a static-shape tensor replaced by its value, so that the shape computations on both sides
    of the cut become constants: a shape handed over as a tensor would make the head's shapes dynamic, which the
    CPU plugin refuses, and one computed on both sides would belong to neither model."""
    import numpy as np
    from openvino import opset13

    for op in model.get_ordered_ops():
        if op.get_type_name() == "ShapeOf" and op.get_input_partial_shape(0).is_static:
            dtype = op.get_output_element_type(0).to_dtype()
            value = opset13.constant(np.array(list(op.get_input_shape(0)), dtype=dtype))
            op.output(0).replace(value.output(0))


def _head_ids(ops: list, constants: set[int], scope: str) -> set[int]:
    """Operations named inside `scope` and every non-constant operation downstream of one."""
    head: set[int] = set()
    for op in ops:
        upstream = {value.get_node().get_instance_id() for value in op.input_values()}
        if op.get_instance_id() not in constants and (op.get_friendly_name().startswith(scope) or upstream & head):
            head.add(op.get_instance_id())
    return head


def split_float32_head(model, scope: str) -> SplitModel:
    """`model` (static shapes) cut at the tensors that the operations named inside `scope` (an ONNX name prefix,
    `onnx_scope`) read from the rest. Modifies `model`'s graph: pass a clone.
    Raises ValueError when nothing is named inside `scope`."""
    from openvino import Model, opset13

    _fold_static_shapes(model)
    ops = model.get_ordered_ops()
    constants = _constant_ids(ops)
    head = _head_ids(ops, constants, scope)
    if not head:
        raise ValueError(f"no operation of this model is named inside {scope}: not a ppad ONNX export?")
    handoff, seen = [], set()
    for op in ops:
        if op.get_instance_id() not in head:
            continue
        for value in op.input_values():
            key = (value.get_node().get_instance_id(), value.get_index())
            if key[0] not in head and key[0] not in constants and key not in seen:
                seen.add(key)
                handoff.append(value)

    def in_head(result) -> bool:
        return result.input_value(0).get_node().get_instance_id() in head

    # fixed names: the compiled-model cache keys on the model's serialised form, which holds them
    trunk_results = [_named(opset13.result(value), f"ppad_handoff_{i}") for i, value in enumerate(handoff)]
    trunk_results += [r for r in model.get_results() if not in_head(r)]
    trunk = Model(trunk_results, list(model.get_parameters()), "ppad_trunk")
    parameters = []
    for i, value in enumerate(handoff):
        parameter = _named(opset13.parameter(value.get_partial_shape(), value.get_element_type()), f"ppad_head_in_{i}")
        for target in list(value.get_target_inputs()):
            if target.get_node().get_instance_id() in head:
                target.replace_source_output(parameter.output(0))
        parameters.append(parameter)
    head_model = Model([r for r in model.get_results() if in_head(r)], parameters, "ppad_head")
    return SplitModel(trunk, head_model, len(handoff))


def _named(node, name: str):
    node.set_friendly_name(name)
    return node
