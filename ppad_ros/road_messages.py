"""RoadGeometry (ppad_core.geometry) -> the `road/*` messages: lane lines, the ego path (nav_msgs/Path), the
drivable grid (nav_msgs/OccupancyGrid), obstacle ground points and RViz/Foxglove markers.

Every message carries the camera image's stamp and the vehicle frame (`base_frame`, base_link by default):
x forward, y left, z up, metres, the ground at z = 0.
"""

from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
from nav_msgs.msg import OccupancyGrid, Path
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import Detection2DArray
from visualization_msgs.msg import Marker, MarkerArray

from ppad_core.geometry.road import LANE_LABELS, DrivableGrid, LaneLine, Obstacle, RoadGeometry
from ppad_ros.msg import GroundObstacle, GroundObstacleArray, LaneLineArray
from ppad_ros.msg import LaneLine as LaneLineMessage

ROAD_TOPICS = {
    "road/lanes": LaneLineArray,
    "road/ego_path": Path,
    "road/drivable_grid": OccupancyGrid,
    "road/obstacles": GroundObstacleArray,
    "road/markers": MarkerArray,
}
LABEL_CODES = {label: getattr(LaneLineMessage, label.upper()) for label in LANE_LABELS}
LANE_COLOURS = {  # r, g, b: the ego lane's lines stand out, the outer ones are paler, the rest white
    "ego_left": (1.0, 0.8, 0.0),
    "ego_right": (0.0, 0.8, 1.0),
    "left_2": (0.8, 0.65, 0.3),
    "right_2": (0.3, 0.65, 0.8),
    "other": (0.9, 0.9, 0.9),
}
EGO_PATH_COLOUR = (0.1, 1.0, 0.2)
BOUNDARY_COLOUR = (1.0, 0.35, 0.1)
OBSTACLE_COLOUR = (1.0, 0.0, 0.0)
LINE_WIDTH_M = 0.15
OBSTACLE_DIAMETER_M = 1.0


def road_header(image_header: Header, base_frame: str) -> Header:
    """The image's stamp in the vehicle frame."""
    return Header(stamp=image_header.stamp, frame_id=base_frame)


def road_messages(
    geometry: RoadGeometry, header: Header, detections: Detection2DArray, markers: bool = True
) -> dict[str, object]:
    """The `road/*` messages of one frame, by topic (relative to the camera's namespace); `markers=False`
    leaves out `road/markers`, the one only a viewer reads and the costliest to build."""
    messages = {
        "road/lanes": lanes_message(geometry.lanes, header),
        "road/ego_path": path_message(geometry.ego_path, header),
        "road/drivable_grid": grid_message(geometry.grid, header),
        "road/obstacles": obstacles_message(geometry.obstacles, detections, header),
    }
    if markers:
        messages["road/markers"] = markers_message(geometry, header)
    return messages


def _points(xy: np.ndarray) -> list[Point]:
    return [Point(x=x, y=y, z=0.0) for x, y in np.asarray(xy, np.float64).reshape(-1, 2).tolist()]


def lanes_message(lanes: list[LaneLine], header: Header) -> LaneLineArray:
    array_message = LaneLineArray(header=header)
    for line in lanes:
        array_message.lines.append(
            LaneLineMessage(
                label=LABEL_CODES.get(line.label, LaneLineMessage.OTHER),
                label_name=line.label,
                points=_points(line.points),
                observed=(np.ones(len(line.points), bool) if line.observed is None else line.observed).tolist(),
                coefficients=np.asarray(line.coefficients, np.float64),
                x_min=float(line.x_range[0]),
                x_max=float(line.x_range[1]),
                confidence=float(line.confidence),
            )
        )
    return array_message


def yaw_quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def path_message(path: np.ndarray, header: Header) -> Path:
    """The ego-lane centre, near to far, each pose facing along the path (yaw from its neighbours)."""
    xy = np.asarray(path, np.float64).reshape(-1, 2)
    direction = np.gradient(xy, axis=0) if len(xy) > 1 else np.tile([1.0, 0.0], (len(xy), 1))
    yaws = np.arctan2(direction[:, 1], direction[:, 0]).tolist()
    message = Path(header=header)
    for (x, y), yaw in zip(xy.tolist(), yaws):
        pose = Pose(position=Point(x=x, y=y, z=0.0), orientation=yaw_quaternion(yaw))
        message.poses.append(PoseStamped(header=header, pose=pose))
    return message


def grid_message(grid: DrivableGrid | None, header: Header) -> OccupancyGrid:
    """OccupancyGrid: columns along x (width), rows along y (height), row-major from the origin cell's corner;
    0 free, 100 occupied, -1 unknown. No grid: an empty one (width and height 0)."""
    message = OccupancyGrid(header=header)
    message.info.map_load_time = header.stamp
    message.info.origin.orientation.w = 1.0
    if grid is None:
        return message
    rows, columns = grid.data.shape
    message.info.resolution = float(grid.resolution_m)
    message.info.width, message.info.height = columns, rows
    message.info.origin.position.x = float(grid.origin_x_m)
    message.info.origin.position.y = float(grid.origin_y_m)
    message.data = array.array("b", np.ascontiguousarray(grid.data, np.int8).tobytes())
    return message


def obstacles_message(obstacles: list[Obstacle], detections: Detection2DArray, header: Header) -> GroundObstacleArray:
    """One ground point per detection, with that detection's class id and score (NaN where it is unknown)."""
    message = GroundObstacleArray(header=header)
    for obstacle in obstacles:
        hypothesis = detections.detections[obstacle.detection_index].results[0].hypothesis
        known = math.isfinite(obstacle.x_m) and math.isfinite(obstacle.y_m)
        message.obstacles.append(
            GroundObstacle(
                detection_index=obstacle.detection_index,
                class_id=hypothesis.class_id,
                score=float(hypothesis.score),
                position=Point(x=obstacle.x_m, y=obstacle.y_m, z=0.0 if known else math.nan),
                range=obstacle.range_m if known else math.nan,
            )
        )
    return message


def _marker(header: Header, namespace: str, marker_id: int, kind: int, colour: tuple, width: float) -> Marker:
    marker = Marker(header=header, ns=namespace, id=marker_id, type=kind, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = width
    marker.color = ColorRGBA(r=colour[0], g=colour[1], b=colour[2], a=1.0)
    marker.lifetime = Duration()  # forever: the next frame's DELETEALL removes it
    return marker


def _line_strip(header: Header, namespace: str, marker_id: int, xy: np.ndarray, colour: tuple, width: float):
    marker = _marker(header, namespace, marker_id, Marker.LINE_STRIP, colour, width)
    marker.points = _points(xy)
    return marker


def markers_message(geometry: RoadGeometry, header: Header) -> MarkerArray:
    """DELETEALL first (the previous frame's markers vanish), then lane lines coloured by label (ns `lanes`), the
    ego path (`ego_path`), the drivable region's edges (`drivable_boundaries`) and a sphere per obstacle ground
    point (`obstacles`, id = detection index; none where the point is unknown). Strips under two points are left
    out."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for i, line in enumerate(geometry.lanes):
        if len(line.points) >= 2:
            colour = LANE_COLOURS.get(line.label, LANE_COLOURS["other"])
            markers.append(_line_strip(header, "lanes", i, line.points, colour, LINE_WIDTH_M))
    if len(geometry.ego_path) >= 2:
        markers.append(_line_strip(header, "ego_path", 0, geometry.ego_path, EGO_PATH_COLOUR, 2 * LINE_WIDTH_M))
    for i, edge in enumerate((geometry.left_boundary, geometry.right_boundary)):
        if len(edge) >= 2:
            markers.append(_line_strip(header, "drivable_boundaries", i, edge, BOUNDARY_COLOUR, LINE_WIDTH_M))
    for obstacle in geometry.obstacles:
        if math.isfinite(obstacle.x_m) and math.isfinite(obstacle.y_m):
            sphere = _marker(
                header, "obstacles", obstacle.detection_index, Marker.SPHERE, OBSTACLE_COLOUR, OBSTACLE_DIAMETER_M
            )
            sphere.pose.position = Point(x=obstacle.x_m, y=obstacle.y_m, z=OBSTACLE_DIAMETER_M / 2)
            markers.append(sphere)
    return MarkerArray(markers=markers)
