"""ros2 launch ppad_ros perception.launch.py model:=student image_topic:=/camera/image_raw
ros2 launch ppad_ros perception.launch.py cameras:=front,left,right camera_topic:=/{camera}/image_raw

Starts the perception node (a lifecycle node that activates itself) with the teacher or student
profile, for one camera or, with `cameras`, one batched node for all of them, and
config/fastdds_localhost.xml as its Fast DDS profile unless FASTDDS_DEFAULT_PROFILES_FILE is set or
fastdds_profile:= says otherwise (README, "Transport"; the camera drivers need the same profile). The
profile -> parameters logic lives in ppad_ros.launch_support, where it is tested.

Road geometry (`road/*`): params_file:=<share>/ppad_ros/config/road_geometry.yaml (or a copy with your
camera pose; with cameras, each camera's pose in its camera_params file). The node finds each camera's
camera_info beside its image topic (/camera/image_raw -> /camera/camera_info), so no extra remapping.

Allocator: allocator:=default (or PPAD_ALLOCATOR=default in the launching shell) leaves glibc malloc as it is;
the default tunes it for the node, set in its environment (ppad_core/runtime/allocator.py).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ppad_ros.launch_support import (
    ALLOCATORS,
    PROFILES,
    allocator_environment,
    camera_names,
    camera_remappings,
    fastdds_environment,
    node_parameters,
    remappings,
)

ARGUMENTS = [
    ("model", "student", "model profile: config/<model>.yaml", PROFILES),
    ("params_file", "", "extra parameter YAML, applied over the profile", None),
    ("image_topic", "/camera/image_raw", "camera topic (sensor_msgs/Image), without cameras", None),
    ("cameras", "", "comma-separated camera names: one node serves them all, e.g. front,left,right", None),
    ("camera_topic", "/{camera}/image_raw", "with cameras: each camera's topic, {camera} is its name", None),
    (
        "camera_params",
        "",
        "with cameras: each camera's own settings file, {camera} is its name, e.g. cameras/{camera}.yaml",
        None,
    ),
    ("namespace", "", "namespace of the node and its outputs, e.g. one per camera", None),
    ("device", "", "override the profile's device (cpu, cuda, cuda:N)", None),
    ("backend", "", "override the profile's backend (torch, onnxruntime, openvino)", None),
    ("use_sim_time", "false", "use /clock (bag replay)", ("true", "false")),
    (
        "fastdds_profile",
        "",
        "Fast DDS XML for the node: '' = $FASTDDS_DEFAULT_PROFILES_FILE, else config/fastdds_localhost.xml; "
        "'none' = add nothing (Fast DDS defaults lose frames over 0.5 MB). The camera driver needs the same file.",
        None,
    ),
    (
        "allocator",
        "",
        "memory allocator policy of the node: '' = $PPAD_ALLOCATOR, else tuned (freed tensors kept for the next "
        "frame, no per-frame page faults); default = glibc as it is",
        ("", *ALLOCATORS),
    ),
]


def _node(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, *_ in ARGUMENTS}
    cameras = camera_names(value["cameras"])
    inputs = camera_remappings(cameras, value["camera_topic"]) if cameras else remappings(value["image_topic"])
    return [
        Node(
            package="ppad_ros",
            executable="perception_node",
            name="perception",
            namespace=value["namespace"],
            parameters=node_parameters(
                value["model"],
                value["params_file"],
                value["device"],
                value["backend"],
                value["use_sim_time"] == "true",
                cameras=cameras,
                camera_params=value["camera_params"],
            ),
            remappings=inputs,
            additional_env=fastdds_environment(value["fastdds_profile"]) | allocator_environment(value["allocator"]),
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=default, description=text, choices=list(choices) if choices else None)
        for name, default, text, choices in ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
