"""ROS 2 adapters for ppad: the perception node, message conversion and rosbag tools.

The generated interfaces (`ppad_ros.msg`) live in the colcon install tree while the sources may be
imported from a checkout; extend_path joins both halves of the package.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
