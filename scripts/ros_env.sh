# Sourced by every script that may start ROS processes: keep DDS discovery on this machine's loopback.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (($$ % 100)) + 101 ))}"
