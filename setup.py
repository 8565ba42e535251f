"""pip installation of ppad_core (framework-neutral) and ppad_ros (ROS 2 adapters) with the `ppad` command.

In a ROS 2 workspace the package is built by colcon through package.xml / CMakeLists.txt instead.
"""

from glob import glob

from setuptools import find_packages, setup

setup(
    name="ppad",
    version="0.1.0",
    description="RMT-PPAD multi-task panoptic driving perception: train, evaluate, compress, export, serve in ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ppad_core", "ppad_core.*", "ppad_ros", "ppad_ros.*"]),
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "pyyaml>=6.0",
        "safetensors>=0.4",
        "rich>=13.0",
        "opencv-python-headless>=4.8",
        "scipy>=1.10",
        "matplotlib>=3.7",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "openvino>=2026.4",
        "torch-pruning==1.6.1",
        "rosbags>=0.10",
    ],
    extras_require={
        "dev": [
            "pytest>=8.0",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "pycocotools>=2.0.7",
            "mcap>=1.2",
            "mcap-ros2-support>=0.5",
        ],
        "tensorboard": ["tensorboard>=2.14"],
    },
    data_files=[("share/ppad_ros/config", sorted(glob("config/*.yaml")))],
    entry_points={
        "console_scripts": [
            "ppad = ppad_core.cli:main",
            "perception_node = ppad_ros.perception_node:main",
            "bag_eval = ppad_ros.bag_eval:main",
            "bag_from_images = ppad_ros.bag_from_images:main",
        ]
    },
)
