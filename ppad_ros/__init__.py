"""ROS 2 adapters for ppad (node, message conversion, rosbag tools); all logic lives in ppad_core."""
