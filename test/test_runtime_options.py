"""RuntimeOptions: the one table of runtime knobs, its validation, and the `ppad` flags and node
parameters generated from it."""

from __future__ import annotations

import argparse

import pytest

from ppad_core.runtime.options import KNOBS, OptionError, RuntimeOptions, add_runtime_arguments
from ppad_ros.parameters import PARAMETERS, runtime_options

# The node's runtime parameters and their defaults before RuntimeOptions existed: they must not change.
NODE_RUNTIME_DEFAULTS = {
    "backend": "torch",
    "device": "cpu",
    "precision": "fp32",
    "channels_last": False,
    "cuda_graph": False,
    "score_threshold": -1.0,
    "resize": "stretch",
    "input_height": 0,
    "input_width": 0,
}


@pytest.mark.parametrize(
    ("change", "option", "message"),
    [
        ({"backend": "tensorrt"}, "backend", "backend='tensorrt' is not one of torch, onnxruntime"),
        ({"device": "gpu"}, "device", "device='gpu' is not one of cpu, cuda, cuda:N"),
        ({"precision": "fp8"}, "precision", "precision='fp8' is not one of fp32, bf16, fp16, int8"),
        ({"precision": "int8"}, "precision", "precision='int8' is not available with the torch backend"),
        ({"backend": "onnxruntime", "precision": "bf16"}, "precision", "not available with the onnxruntime backend"),
        ({"precision": "fp16"}, "precision", "precision='fp16' needs a CUDA device; on CPU use bf16"),
        ({"cuda_graph": True}, "cuda_graph", "cuda_graph needs a CUDA device, not device='cpu'"),
        ({"backend": "onnxruntime", "cuda_graph": True}, "cuda_graph", "cuda_graph is an option of the torch"),
        ({"score_threshold": 1.5}, "score_threshold", "score_threshold=1.5 is above its maximum 1.0"),
        ({"score_threshold": -2.0}, "score_threshold", "score_threshold=-2.0 is below its minimum -1.0"),
        ({"resize": "crop"}, "resize", "resize='crop' is not one of stretch, letterbox"),
        ({"input_size": (320, 100)}, "input_size", r"input_size=\(320, 100\) must be .* multiples of 32"),
        ({"input_size": (-32, 0)}, "input_size", "below its minimum 0"),
    ],
)
def test_each_bad_value_is_refused_naming_its_option(change, option, message):
    with pytest.raises(OptionError, match=message) as raised:
        RuntimeOptions(**change).validate()
    assert raised.value.option == option


def test_good_combinations_validate():
    assert RuntimeOptions().validate() == RuntimeOptions()
    RuntimeOptions(device="cuda:1", precision="fp16", channels_last=True, cuda_graph=True).validate()
    RuntimeOptions(backend="onnxruntime", precision="int8", score_threshold=0.4, resize="letterbox").validate()


def test_input_size_override_is_one_function_and_fixed_graphs_refuse_it(small_config):
    config = small_config
    assert RuntimeOptions().model_config(config) is config
    assert RuntimeOptions(input_size=(320, 0)).model_config(config).input_size == (320, 448)
    assert config.input_size == (256, 448)  # the checkpoint's config is never changed
    assert RuntimeOptions(input_size=(256, 448)).model_config(config, fixed_size=True) is config
    with pytest.raises(OptionError, match="exported at \\(256, 448\\); another input size needs the torch"):
        RuntimeOptions(input_size=(320, 0)).model_config(config, fixed_size=True)


def _parsed(argv: list[str], **kwargs) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser, **kwargs)
    return parser.parse_args(argv)


def test_cli_flags_come_from_the_table_and_read_back():
    assert RuntimeOptions.from_args(_parsed([])) == RuntimeOptions()
    argv = ["--backend", "onnxruntime", "--precision", "int8", "--conf", "0.3", "--resize", "letterbox"]
    argv += ["--input-size", "320", "640", "--onnx-cache", "/tmp/onnx"]
    options = RuntimeOptions.from_args(_parsed(argv))
    assert options == RuntimeOptions(
        backend="onnxruntime",
        precision="int8",
        score_threshold=0.3,
        resize="letterbox",
        input_size=(320, 640),
        onnx_cache="/tmp/onnx",
    )
    assert vars(_parsed([], only=("device",))) == {"device": "cpu"}
    with pytest.raises(SystemExit):  # choices come from the table too
        _parsed(["--backend", "tensorrt"])
    with pytest.raises(OptionError, match="fp16' needs a CUDA device"):
        RuntimeOptions.from_args(_parsed(["--precision", "fp16"]))


def test_cli_flags_and_node_parameters_share_defaults_choices_and_help():
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    flags = {action.dest: action for action in parser._actions if action.dest in KNOBS}
    node = {spec.name: spec for spec in PARAMETERS}
    for name, knob in KNOBS.items():
        if name == "input_size":
            assert tuple(node[side].default for side in ("input_height", "input_width")) == flags[name].default
            continue
        if knob.node:
            assert node[name].default == getattr(RuntimeOptions(), name)
            assert node[name].choices == knob.choices and node[name].description == knob.help
        if knob.flag:
            assert flags[name].default == getattr(RuntimeOptions(), name)
            assert tuple(flags[name].choices or ()) == knob.choices and flags[name].help.startswith(knob.help)
    assert {name: node[name].default for name in NODE_RUNTIME_DEFAULTS} == NODE_RUNTIME_DEFAULTS


def test_node_values_make_the_same_options_as_the_flags():
    values = {spec.name: spec.default for spec in PARAMETERS}
    assert runtime_options(values) == RuntimeOptions.from_args(_parsed([]))
    values |= {"backend": "onnxruntime", "score_threshold": 0.3, "input_height": 320, "input_width": 640}
    argv = ["--backend", "onnxruntime", "--conf", "0.3", "--input-size", "320", "640"]
    assert runtime_options(values) == RuntimeOptions.from_args(_parsed(argv))
