"""The launch file's logic, kept where tests reach it (`ros2 launch` itself is not installable here).

Parameter precedence: the profile's YAML (config/teacher.yaml or config/student.yaml), then a user
`params_file`, then each camera's own file, then explicit launch arguments (only those given a value).
`cameras:=front,left` makes one node serve those cameras, each input remapped from `camera_topic` with
`{camera}` replaced by its name; `camera_params:=cameras/{camera}.yaml` gives each camera its own settings.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ppad_core.runtime.allocator import ENV_VAR as ALLOCATOR_VARIABLE
from ppad_core.runtime.allocator import POLICIES as ALLOCATORS
from ppad_core.runtime.allocator import TUNED_ENVIRONMENT, requested_policy
from ppad_ros.frame_flow import camera_topic
from ppad_ros.parameters import PER_CAMERA, camera_parameter, check_cameras
from ppad_ros.resources import config_dir, find_resource

PROFILES = ("teacher", "student")
FASTDDS_PROFILE = "config/fastdds_localhost.xml"
CAMERA_PLACEHOLDER = "{camera}"


def profile_params_file(profile: str, directory: Path | None = None) -> Path:
    if profile not in PROFILES:
        raise ValueError(f"model:={profile!r} is not one of {', '.join(PROFILES)}")
    path = (directory or config_dir()) / f"{profile}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: parameter file of the {profile} profile is missing")
    return path


def node_parameters(
    profile: str,
    params_file: str = "",
    device: str = "",
    backend: str = "",
    use_sim_time: bool = False,
    directory: Path | None = None,
    cameras: tuple[str, ...] = (),
    camera_params: str = "",
) -> list:
    """The `parameters=` list for launch_ros.actions.Node, lowest precedence first."""
    parameters: list = [str(profile_params_file(profile, directory))]
    if params_file:
        if not Path(params_file).is_file():
            raise FileNotFoundError(f"params_file {params_file!r} does not exist")
        parameters.append(params_file)
    if camera_params:
        parameters.append(camera_settings(cameras, camera_params))
    overrides: dict = {"use_sim_time": bool(use_sim_time)}
    if device:
        overrides["device"] = device
    if backend:
        overrides["backend"] = backend
    if cameras:
        overrides["cameras"] = list(cameras)
    parameters.append(overrides)
    return parameters


def remappings(image_topic: str, camera: str = "") -> list[tuple[str, str]]:
    """The node's relative `image` input of `camera` ("": the single camera) and its compressed variant onto the
    camera's topic."""
    return [
        (camera_topic(camera, "image"), image_topic),
        (camera_topic(camera, "image/compressed"), f"{image_topic}/compressed"),
    ]


def fastdds_environment(fastdds_profile: str = "", environ: dict | None = None) -> dict:
    """The node's `additional_env`: FASTDDS_DEFAULT_PROFILES_FILE for megabyte frames under the LOCALHOST range.

    `fastdds_profile` '' keeps a FASTDDS_DEFAULT_PROFILES_FILE already in the environment, else uses the
    package's config/fastdds_localhost.xml (found like every other resource: ppad_ros.resources); 'none'
    adds nothing; any other value is the profile's path.
    """
    environ = os.environ if environ is None else environ
    if fastdds_profile == "none":
        return {}
    if fastdds_profile:
        path = Path(fastdds_profile)
        if not path.is_file():
            raise FileNotFoundError(f"fastdds_profile {fastdds_profile!r} does not exist")
        return {"FASTDDS_DEFAULT_PROFILES_FILE": str(path.resolve())}
    if environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        return {}
    return {"FASTDDS_DEFAULT_PROFILES_FILE": str(find_resource(FASTDDS_PROFILE, "Fast DDS profile").resolve())}


def allocator_environment(allocator: str = "", environ: dict | None = None) -> dict:
    """The node's `additional_env` for its allocator policy (ppad_core.runtime.allocator).

    `allocator` '' takes PPAD_ALLOCATOR from the launching environment (tuned when unset). tuned adds glibc's
    environment form of the policy (MALLOC_ARENA_MAX=1 and the rest), read before the interpreter starts: only
    set that early does it put the inference thread on the one heap (rclpy's import already made other arenas
    when the node's main tunes the rest), which keeps tensors above 64 MiB out of per-call mmap. default adds
    nothing but the choice.
    """
    environ = os.environ if environ is None else environ
    if allocator and allocator not in ALLOCATORS:
        raise ValueError(f"allocator:={allocator!r} is not one of {', '.join(ALLOCATORS)}")
    policy = allocator or requested_policy(environ)
    return {ALLOCATOR_VARIABLE: policy} | (TUNED_ENVIRONMENT if policy == "tuned" else {})


def camera_names(text: str) -> tuple[str, ...]:
    """`cameras:=front, left,right` as names; a ValueError for a name the node would refuse, or a repeated one."""
    cameras = tuple(name.strip() for name in text.split(",") if name.strip())
    check_cameras(cameras)
    return cameras


def camera_settings(cameras: tuple[str, ...], pattern: str) -> dict:
    """Each camera's own settings as `<camera>.<setting>` parameters, from the YAML file `pattern` names with
    `{camera}` replaced (a plain mapping, e.g. `input_transport: compressed`; settings: PER_CAMERA)."""
    if CAMERA_PLACEHOLDER not in pattern:
        raise ValueError(f"camera_params:={pattern!r} must hold {CAMERA_PLACEHOLDER}, e.g. cameras/{{camera}}.yaml")
    if not cameras:
        raise ValueError("camera_params:= needs cameras:=")
    parameters = {}
    for camera in cameras:
        path = find_resource(pattern.replace(CAMERA_PLACEHOLDER, camera), f"camera_params file of {camera}")
        settings = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(settings) - set(PER_CAMERA)) if isinstance(settings, dict) else ["(not a mapping)"]
        if unknown:
            raise ValueError(f"{path}: {', '.join(map(str, unknown))} not a camera setting ({', '.join(PER_CAMERA)})")
        parameters |= {camera_parameter(camera, name): value for name, value in settings.items()}
    return parameters


def camera_remappings(cameras: tuple[str, ...], topic: str) -> list[tuple[str, str]]:
    """Each camera's relative `<camera>/image` (and compressed variant) onto `topic` with its name filled in."""
    if CAMERA_PLACEHOLDER not in topic:
        raise ValueError(f"camera_topic:={topic!r} must hold {CAMERA_PLACEHOLDER}, e.g. /{{camera}}/image_raw")
    return [pair for camera in cameras for pair in remappings(topic.replace(CAMERA_PLACEHOLDER, camera), camera)]
