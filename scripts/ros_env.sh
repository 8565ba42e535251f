# Sourced by every script that may start ROS processes.
# Keeps DDS discovery on this machine's loopback, on a domain of its own.
_ppad_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (($$ % 100)) + 101 ))}"
# Camera frames are megabytes. Under the LOCALHOST range rmw_fastrtps replaces Fast DDS's builtin
# transports (FASTDDS_BUILTIN_TRANSPORTS has no effect) with a shared-memory transport of 512 KiB per
# process, which loses best-effort samples above ~0.5 MB; this profile gives it 32 MiB (README,
# "Transport"). Every process that writes or reads camera frames must load it.
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_ppad_repo/config/fastdds_localhost.xml}"

# The dev underlay built by scripts/ros_underlay.sh: ROS 2 wheels in the venv plus .ros/install.
_ppad_venv="$_ppad_repo/${PPAD_VENV:-.venv}"
if [ -z "${ROS_DISTRO:-}" ] && [ -d "$_ppad_venv/share/rclpy" ]; then
  export AMENT_PREFIX_PATH="$_ppad_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$_ppad_venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
fi
if [ -f "$_ppad_repo/.ros/install/local_setup.sh" ]; then
  case $- in *u*) _ppad_nounset=1; set +u ;; *) _ppad_nounset=0 ;; esac  # colcon's script reads unset variables
  COLCON_CURRENT_PREFIX="$_ppad_repo/.ros/install" . "$_ppad_repo/.ros/install/local_setup.sh"
  [ "$_ppad_nounset" = 1 ] && set -u
  unset _ppad_nounset
  # The checkout's sources shadow the installed copies (new files need no rebuild); ppad_ros.msg
  # still comes from the install tree through the package's extend_path.
  export PYTHONPATH="$_ppad_repo:$PYTHONPATH"
fi
unset _ppad_repo _ppad_venv
