"""The launch file's logic, kept where tests reach it (`ros2 launch` itself is not installable here).

Parameter precedence: the profile's YAML (config/teacher.yaml or config/student.yaml), then a user
`params_file`, then explicit launch arguments (only those given a value).
"""

from __future__ import annotations

from pathlib import Path

from ppad_ros.resources import config_dir

PROFILES = ("teacher", "student")


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
) -> list:
    """The `parameters=` list for launch_ros.actions.Node, lowest precedence first."""
    parameters: list = [str(profile_params_file(profile, directory))]
    if params_file:
        if not Path(params_file).is_file():
            raise FileNotFoundError(f"params_file {params_file!r} does not exist")
        parameters.append(params_file)
    overrides: dict = {"use_sim_time": bool(use_sim_time)}
    if device:
        overrides["device"] = device
    if backend:
        overrides["backend"] = backend
    parameters.append(overrides)
    return parameters


def remappings(image_topic: str) -> list[tuple[str, str]]:
    """The node's relative `image` input (and its compressed variant) onto the camera's topic."""
    return [("image", image_topic), ("image/compressed", f"{image_topic}/compressed")]
