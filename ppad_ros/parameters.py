"""The perception node's parameters: one table (name, default, range, meaning), used to declare them,
validate them and document them (README's table is checked against it by the tests)."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, fields
from typing import Any

from ppad_core.geometry.camera import CameraPose
from ppad_core.geometry.road import GeometrySettings
from ppad_core.runtime.options import DEFAULT_OPTIONS, KNOBS, OptionError, RuntimeOptions, check_value
from ppad_ros.image_conversion import DEFAULT_MAX_PIXELS
from ppad_ros.wire_text import printable


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any) -> Any:
        """`value` as this parameter's type (an integer literal is a valid float, a string list a tuple, an unset
        list empty); a ValueError names it."""
        kind = type(self.default)
        if kind is float and type(value) is int:
            return float(value)
        if kind is list and value is None:  # `-p cameras:=[]` arrives as an unset parameter
            return ()
        if kind is list and isinstance(value, (list, tuple)) and all(type(item) is str for item in value):
            return tuple(value)
        if type(value) is not kind or kind is list:
            shown = printable(repr(value))
            raise ValueError(f"parameter {self.name}={shown} is not {TYPE_NAMES[kind]}{self.allowed()}")
        return value

    def allowed(self) -> str:
        """The allowed values or range, as error messages and descriptions state them."""
        if self.choices:
            return f" (one of {', '.join(self.choices)})"
        bounds = [f">= {self.minimum:g}"] if self.minimum is not None else []
        bounds += [f"<= {self.maximum:g}"] if self.maximum is not None else []
        return f" ({', '.join(bounds)})" if bounds else ""


TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list of strings"}
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
INPUT_SIDES = ("input_height", "input_width")  # the node's two parameters for RuntimeOptions.input_size


def runtime_parameters() -> tuple[ParameterSpec, ...]:
    """The RuntimeOptions knobs the node declares, with their defaults, choices, ranges and help."""
    specs = []
    for name, knob in KNOBS.items():
        default = getattr(DEFAULT_OPTIONS, name)
        if not knob.node:
            continue
        if name == "input_size":
            specs += [
                ParameterSpec(side, value, _side_help(side), minimum=knob.minimum)
                for side, value in zip(INPUT_SIDES, default)
            ]
        else:
            specs.append(ParameterSpec(name, default, knob.help, knob.choices, knob.minimum, knob.maximum))
    return tuple(specs)


def _side_help(side: str) -> str:
    return f"network input {side.removeprefix('input_')} (multiple of 32); 0: the checkpoint's"


DEFAULT_POSE = CameraPose()
DEFAULT_GEOMETRY = GeometrySettings()
POSE_PARAMETERS = {f"camera_{axis}": axis for axis in ("x", "y", "z", "roll", "pitch", "yaw")}
GEOMETRY_PREFIX = "geometry."


def pose_parameters() -> tuple[ParameterSpec, ...]:
    """The camera's pose in `base_frame` (ppad_core.geometry.CameraPose: the camera body frame, REP-103 axes)."""
    where = "of the camera in base_frame, metres"
    turn = "of the camera body (x along the optical axis, y left, z up) in base_frame, radians"
    return (
        ParameterSpec("camera_x", DEFAULT_POSE.x, f"x (forward) {where}"),
        ParameterSpec("camera_y", DEFAULT_POSE.y, f"y (left) {where}"),
        ParameterSpec("camera_z", DEFAULT_POSE.z, f"z (up) {where}: its height above the flat ground", minimum=0.01),
        ParameterSpec("camera_roll", DEFAULT_POSE.roll, f"roll {turn}", minimum=-math.pi, maximum=math.pi),
        ParameterSpec(
            "camera_pitch",
            DEFAULT_POSE.pitch,
            f"pitch {turn}; > 0 looks down",
            minimum=-math.pi / 2,
            maximum=math.pi / 2,
        ),
        ParameterSpec("camera_yaw", DEFAULT_POSE.yaw, f"yaw {turn}; > 0 looks left", minimum=-math.pi, maximum=math.pi),
    )


def geometry_parameters() -> tuple[ParameterSpec, ...]:
    """The ppad_core.geometry.GeometrySettings a user tunes, as `geometry.<setting>` (defaults: the core's)."""
    settings = (
        ("max_range_m", "ground points farther than this from base_frame's origin are dropped, metres", 1.0, None),
        (
            "lane_threshold",
            "lane probability that makes a lane pixel for the geometry (not the mask's threshold)",
            0.01,
            0.99,
        ),
        ("grid_resolution_m", "`road/drivable_grid` cell size, metres", 0.01, None),
        ("grid_x_min_m", "`road/drivable_grid` near edge (x in base_frame), metres", None, None),
        ("grid_x_max_m", "`road/drivable_grid` far edge (x in base_frame), metres", None, None),
        ("grid_y_half_width_m", "`road/drivable_grid` extends this far to each side of base_frame's x axis", 0.1, None),
        ("lane_width_m", "lane width assumed when only one side of the ego lane is seen, metres", 0.5, None),
        ("min_confidence", "lane lines whose mean lane probability is below this are dropped", 0.0, 1.0),
        ("path_step_m", "spacing of the published lane, path and boundary points, metres", 0.05, None),
    )
    return tuple(
        ParameterSpec(GEOMETRY_PREFIX + name, float(getattr(DEFAULT_GEOMETRY, name)), text, minimum=low, maximum=high)
        for name, text, low, high in settings
    )


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "checkpoint",
        "",
        "ppad checkpoint directory (or exported .onnx); relative paths are tried "
        "against the working directory, then the package's share directory",
    ),
    ParameterSpec("model_name", "", "name published in each PerceptionResult; empty: the checkpoint folder name"),
    *runtime_parameters(),
    ParameterSpec(
        "class_id_mode",
        "index",
        "ObjectHypothesis.class_id as the decimal class index (joins LabelInfo) or the class name",
        choices=("index", "name"),
    ),
    ParameterSpec(
        "input_transport",
        "raw",
        "subscribe to `image` (sensor_msgs/Image) or `image/compressed` (sensor_msgs/CompressedImage)",
        choices=("raw", "compressed"),
    ),
    ParameterSpec(
        "max_input_age_ms", 0.0, "> 0: frames whose header stamp is older than this are dropped", minimum=0.0
    ),
    ParameterSpec("max_image_pixels", DEFAULT_MAX_PIXELS, "larger frames are rejected", minimum=1),
    ParameterSpec(
        "cameras",
        [],
        "camera names, e.g. [front, left]: one batched model serves `<camera>/image` -> `<camera>/detections`, ...; "
        "empty: one camera on `image` -> `detections`, ...",
    ),
    ParameterSpec(
        "batch_window_ms",
        5.0,
        "after a frame arrives, how long cameras without a waiting frame may take to join its batch",
        minimum=0.0,
        maximum=1000.0,
    ),
    ParameterSpec("max_batch", 8, "most cameras in one forward pass; the cameras waiting longest go first", minimum=1),
    ParameterSpec("publish_overlay", True, "render `debug/overlay` (only while it has subscribers)"),
    ParameterSpec("publish_combined", True, "publish the combined `perception` message"),
    ParameterSpec(
        "road_geometry",
        False,
        "publish lane lines, ego path, drivable grid, obstacle ground points and markers on `road/*`, from the "
        "camera's `camera_info` and pose; off: no camera_info subscription and no geometry work",
    ),
    ParameterSpec("base_frame", "base_link", "frame_id of the `road/*` outputs: the vehicle frame of the camera pose"),
    *pose_parameters(),
    *geometry_parameters(),
    ParameterSpec("warmup_iterations", 2, "inferences on a blank frame before the node reports ready", minimum=0),
    ParameterSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status", minimum=0.1),
    ParameterSpec("autostart", True, "configure and activate at start-up; false: wait for a lifecycle manager"),
)


SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
GEOMETRY_NAMES = frozenset(spec.name for spec in geometry_parameters())
# what a camera may set for itself as `<camera>.<name>` (unset: the node-wide value)
PER_CAMERA = ("input_transport", "max_input_age_ms", "max_image_pixels", "road_geometry", *POSE_PARAMETERS)


@dataclass(frozen=True)
class CameraSettings:
    """One camera's settings: its own `<camera>.<name>` values, else the node-wide ones."""

    input_transport: str
    max_input_age_ms: float
    max_image_pixels: int
    road_geometry: bool = SPECS["road_geometry"].default
    camera_x: float = DEFAULT_POSE.x
    camera_y: float = DEFAULT_POSE.y
    camera_z: float = DEFAULT_POSE.z
    camera_roll: float = DEFAULT_POSE.roll
    camera_pitch: float = DEFAULT_POSE.pitch
    camera_yaw: float = DEFAULT_POSE.yaw

    @property
    def pose(self) -> CameraPose:
        return CameraPose(**{axis: getattr(self, name) for name, axis in POSE_PARAMETERS.items()})


def camera_parameter(camera: str, name: str) -> str:
    return f"{camera}.{name}"


def split_camera_parameter(name: str) -> tuple[str, str] | None:
    """(camera, setting) of a `<camera>.<setting>` parameter name, or None for any other name."""
    camera, dot, setting = name.rpartition(".")
    return (camera, setting) if dot and setting in PER_CAMERA and CAMERA_NAME.fullmatch(camera) else None


@dataclass
class NodeParameters:
    """The node's own parameters, and the RuntimeOptions its runtime parameters make."""

    checkpoint: str
    model_name: str
    class_id_mode: str
    input_transport: str
    max_input_age_ms: float
    max_image_pixels: int
    cameras: tuple[str, ...]
    batch_window_ms: float
    max_batch: int
    publish_overlay: bool
    publish_combined: bool
    warmup_iterations: int
    diagnostics_period_s: float
    autostart: bool
    road_geometry: bool
    base_frame: str
    runtime: RuntimeOptions
    camera_settings: dict[str, CameraSettings]
    geometry: GeometrySettings = DEFAULT_GEOMETRY

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeParameters:
        """Validated parameters; a ValueError names the parameter, its value and the allowed values or range.
        `values` holds the table's names and, for cameras, `<camera>.<setting>` names (None: unset)."""
        per_camera = {name: value for name, value in values.items() if name not in SPECS}
        values = {name: _checked(SPECS[name], name, value) for name, value in values.items() if name in SPECS}
        check_cameras(values.get("cameras", ()))
        if not values.get("checkpoint"):
            raise ValueError("parameter checkpoint is empty: set it (config/teacher.yaml, config/student.yaml)")
        if not values.get("base_frame", "base_link").strip():
            raise ValueError("parameter base_frame is empty: name the vehicle frame of the camera pose, e.g. base_link")
        own = {f.name: values[f.name] for f in fields(cls) if f.name not in ("runtime", "camera_settings", "geometry")}
        cameras = values.get("cameras", ())
        settings = {camera: _camera_settings(camera, values, per_camera) for camera in cameras or ("",)}
        return cls(**own, runtime=runtime_options(values), camera_settings=settings, geometry=geometry_settings(values))

    def camera(self, camera: str) -> CameraSettings:
        """The settings of `camera` ("" for the single unnamed camera)."""
        return self.camera_settings[camera]

    @property
    def any_road_geometry(self) -> bool:
        """Whether some camera publishes `road/*` (the node-wide `road_geometry` or a camera's own)."""
        return any(settings.road_geometry for settings in self.camera_settings.values())


def _checked(spec: ParameterSpec, name: str, value: Any) -> Any:
    """`value` of parameter `name` (a table entry or a camera's own copy of one), coerced and checked."""
    spec = dataclasses.replace(spec, name=name)
    value = spec.coerce(value)
    if type(value) is float and not math.isfinite(value):
        raise ValueError(f"parameter {name}={value!r} is not a finite number{spec.allowed()}")
    try:
        check_value(name, value, spec.choices, spec.minimum, spec.maximum)
    except OptionError as exc:
        raise ValueError(f"parameter {printable(exc, 200)}") from None
    return value


def _camera_settings(camera: str, values: dict[str, Any], per_camera: dict[str, Any]) -> CameraSettings:
    chosen = {}
    for setting in PER_CAMERA:
        name = camera_parameter(camera, setting)
        own = per_camera.get(name) if camera else None
        chosen[setting] = values[setting] if own is None else _checked(SPECS[setting], name, own)
    return CameraSettings(**chosen)


def geometry_settings(values: dict[str, Any]) -> GeometrySettings:
    """The GeometrySettings of the `geometry.<setting>` parameter values (the others the core's defaults); a
    ValueError names the parameter."""
    chosen = {name.removeprefix(GEOMETRY_PREFIX): value for name, value in values.items() if name in GEOMETRY_NAMES}
    try:
        return GeometrySettings(**chosen).validate()
    except ValueError as exc:
        raise ValueError(f"parameter {str(exc).replace('geometry setting ', GEOMETRY_PREFIX)}") from None


def check_cameras(cameras: tuple[str, ...]) -> None:
    """A ValueError unless every camera name is a ROS name token and none repeats."""
    for camera in cameras:
        if not CAMERA_NAME.fullmatch(camera):
            raise ValueError(
                f"parameter cameras: {printable(repr(camera))} is not a camera name "
                "(letters, digits and underscores, starting with a letter)"
            )
    repeated = sorted({camera for camera in cameras if cameras.count(camera) > 1})
    if repeated:
        raise ValueError(f"parameter cameras names {', '.join(repeated)} more than once")


def runtime_options(values: dict[str, Any]) -> RuntimeOptions:
    """The validated RuntimeOptions of the node's parameter values; a ValueError names the parameter(s)."""
    knobs = {name: values[name] for name, knob in KNOBS.items() if knob.node and name != "input_size"}
    options = RuntimeOptions(**knobs, input_size=tuple(values[side] for side in INPUT_SIDES))
    try:
        return options.validate()
    except OptionError as exc:
        names = "/".join(INPUT_SIDES) if exc.option == "input_size" else exc.option
        raise ValueError(f"parameter {names}: {exc}") from exc


def markdown_table() -> str:
    """The README's parameter table."""
    lines = ["| parameter | default | meaning |", "|---|---|---|"]
    for spec in PARAMETERS:
        meaning = spec.description
        if spec.choices:
            meaning += " (" + " \\| ".join(spec.choices) + ")"
        lines.append(f"| `{spec.name}` | `{spec.default!r}` | {meaning} |")
    return "\n".join(lines) + "\n"
