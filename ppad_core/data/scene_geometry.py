"""Road-geometry ground truth of the procedural scenes (synth.py), in the OpenLane v1 layout plus a sidecar.

Per sample, beside the RMT-PPAD files (layout.py):

root/geometry/<split>/<name>.json        OpenLane v1: file_path, intrinsic [3][3], extrinsic [4][4], lane_lines
root/geometry/<split>/<name>.scene.json  sidecar: terrain, vehicles (box, ground xyz, range), grid metadata
root/geometry/<split>/<name>.grid.png    the drivable grid, uint8: 0 free, 100 occupied, 255 unknown

Frames: `extrinsic` maps camera optical-frame points (x right, y down, z forward) to base_link (REP-103: x
forward, y left, z up), whose origin is on the road below the camera. OpenLane's own files use the Waymo
vehicle axes; here the one transform is this one. Lane `xyz` are in the camera optical frame, as in OpenLane;
`attribute` is OpenLane's position (1 left-left, 2 left, 3 right, 4 right-right, 0 other) and `category`
its marking type (1 white dashed, 2 white solid, 7 yellow dashed, 8 yellow solid, 10 double yellow solid).
`visibility` is 1 where the line is in the image, not behind a hill crest, not covered by a vehicle or
roadside object, and not beyond the farthest point where its paint is drawn at all (far dashes thinner
than a pixel vanish). A double yellow line is one lane line at its centre.

Ground truth grid (road.DrivableGrid layout): free = the road surface where the camera sees it; occupied =
seen ground off the road; unknown = outside the view or range, behind a crest, or road hidden behind
something standing on it. Cells are projected with the true road height, so on hills the flat-ground
prediction and this grid differ by exactly the flat-ground error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ppad_core.data.layout import DatasetLayout
from ppad_core.data.synth import Scene
from ppad_core.geometry.camera import OPTICAL_TO_BODY, CameraPose
from ppad_core.geometry.grid import grid_cells
from ppad_core.geometry.road import FREE, OCCUPIED, UNKNOWN, DrivableGrid, GeometrySettings

ATTRIBUTE_LABELS = {1: "left_2", 2: "ego_left", 3: "ego_right", 4: "right_2", 0: "other"}
CATEGORIES = {("white", True): 1, ("white", False): 2, ("yellow", True): 7, ("yellow", False): 8}
DOUBLE_YELLOW = 10
GRID_PNG = {FREE: 0, OCCUPIED: 100, UNKNOWN: 255}
SAMPLE_STEP_M, SAMPLE_MAX_M = 0.5, 150.0


@dataclass(frozen=True)
class GroundTruthLane:
    points: np.ndarray  # [n, 3] base_link
    visibility: np.ndarray  # [n] bool
    category: int
    attribute: int
    track_id: int

    @property
    def label(self) -> str:
        return ATTRIBUTE_LABELS[self.attribute]


@dataclass(frozen=True)
class SceneGroundTruth:
    intrinsic: np.ndarray  # 3x3
    pose: CameraPose
    width: int
    height: int
    lanes: list[GroundTruthLane]
    boxes: np.ndarray  # [N, 4] the label file's boxes, in order
    vehicle_ground: np.ndarray  # [N, 3] base_link bottom centre of each box's vehicle
    grid: DrivableGrid
    hilly: bool


def scene_ground_truth(scene: Scene, settings: GeometrySettings | None = None) -> SceneGroundTruth:
    """The geometry behind a rendered scene; the grid has `settings`' extent (defaults: road.GeometrySettings)."""
    settings = settings or GeometrySettings()
    cam, road = scene.camera, scene.road
    intrinsic = np.array([[cam.focal, 0, cam.width / 2], [0, cam.focal, cam.horizon], [0, 0, 1]])
    x, z = scene.vehicle_positions[:, 0], scene.vehicle_positions[:, 1]
    vehicles = np.stack([z, -(x + road.centre_offset(z)), road.elevation(z)], 1) if len(z) else np.zeros((0, 3))
    return SceneGroundTruth(
        intrinsic,
        CameraPose(z=cam.height_m),
        cam.width,
        cam.height,
        _lanes(scene),
        scene.boxes,
        vehicles,
        _grid(scene, settings),
        bool(road.hill_amplitude != 0),
    )


def _boundaries(scene: Scene) -> list[tuple[tuple[float, ...], int]]:
    """(road-frame lateral offsets of its paint, category) of each line, left to right; double yellow merged."""
    markings = sorted(scene.road.markings)
    lines, i = [], 0
    while i < len(markings):
        x, colour, dashed = markings[i]
        pair = i + 1 < len(markings) and colour == markings[i + 1][1] == "yellow" and markings[i + 1][0] - x < 0.5
        if pair:
            lines.append(((x, markings[i + 1][0]), DOUBLE_YELLOW))
        else:
            lines.append(((x,), CATEGORIES[(colour, dashed)]))
        i += 2 if pair else 1
    return lines


def _pixels(scene: Scene, lateral: float, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rounded pixel columns and rows of road points, and whether each is inside the image."""
    u, v = scene.camera.project(np.full_like(z, lateral), z, 0.0, scene.road)
    col, row = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    return col, row, (col >= 0) & (col < scene.camera.width) & (row >= 0) & (row < scene.camera.height)


def _visible(scene: Scene, paint: tuple[float, ...], z: np.ndarray) -> np.ndarray:
    """Points of the line at `z` (near to far) the camera sees: inside the image, not behind a crest, not
    covered, and between the nearest and the farthest of them where the lane mask shows the line's paint
    (at any of its `paint` offsets), so a far dash too thin to be drawn ends the line as the image ends it."""
    centre = sum(paint) / len(paint)
    _, v = scene.camera.project(np.full_like(z, centre), z, 0.0, scene.road)
    col, row, inside = _pixels(scene, centre, z)
    nearer_top = np.minimum.accumulate(np.concatenate([[np.inf], v[:-1]]))
    ground = (scene.drivable > 0) | (scene.lane > 0)
    uncovered, shown = np.zeros(len(z), bool), np.zeros(len(z), bool)
    uncovered[inside] = ground[row[inside], col[inside]]
    for lateral in paint:
        paint_col, paint_row, paint_inside = _pixels(scene, lateral, z)
        shown[paint_inside] |= scene.lane[paint_row[paint_inside], paint_col[paint_inside]] > 0
    visible = inside & (v < nearer_top) & uncovered
    drawn = np.nonzero(visible & shown)[0]
    if len(drawn) == 0:
        return np.zeros(len(z), bool)
    visible[: drawn[0]] = False
    visible[drawn[-1] + 1 :] = False
    return visible


def _lanes(scene: Scene) -> list[GroundTruthLane]:
    road = scene.road
    z = np.arange(1.0, SAMPLE_MAX_M + 1e-9, SAMPLE_STEP_M)
    ego_left = road.ego_lane  # boundary index left of the ego lane
    lanes = []
    for index, (paint, category) in enumerate(_boundaries(scene)):
        lateral = sum(paint) / len(paint)
        points = np.stack([z, -(lateral + road.centre_offset(z)), road.elevation(z)], 1)
        attribute = {ego_left - 1: 1, ego_left: 2, ego_left + 1: 3, ego_left + 2: 4}.get(index, 0)
        lanes.append(GroundTruthLane(points, _visible(scene, paint, z), category, attribute, index))
    return lanes


def _grid(scene: Scene, settings: GeometrySettings) -> DrivableGrid:
    cam, road = scene.camera, scene.road
    x, y, origin_x, origin_y = grid_cells(settings)
    xx, yy = np.meshgrid(x, y)  # [rows, columns]
    lateral = -yy
    u = cam.width / 2 + cam.focal * lateral / xx
    v_column = cam.horizon + cam.focal * (cam.height_m - road.elevation(x)) / x
    behind_crest = v_column >= np.minimum.accumulate(np.concatenate([[np.inf], v_column[:-1]]))
    v = np.broadcast_to(v_column, xx.shape)
    col, row = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
    seen = (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height) & ~behind_crest[None, :]
    seen &= np.hypot(xx, yy) <= settings.max_range_m
    road_lateral = lateral - road.centre_offset(xx)
    on_road = (road_lateral >= road.left_edge) & (road_lateral <= road.right_edge)
    drivable_pixel = np.zeros(xx.shape, bool)
    drivable_pixel[seen] = scene.drivable[row[seen], col[seen]] > 0
    data = np.full(xx.shape, UNKNOWN, np.int8)
    data[seen & ~on_road] = OCCUPIED
    data[seen & on_road & drivable_pixel] = FREE
    return DrivableGrid(data, settings.grid_resolution_m, origin_x, origin_y)


def _extrinsic(pose: CameraPose) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = pose.rotation() @ OPTICAL_TO_BODY
    matrix[:3, 3] = pose.position
    return matrix


def geometry_paths(root: str | Path, split: str, name: str) -> tuple[Path, Path, Path]:
    """OpenLane JSON, sidecar JSON and grid PNG of one sample."""
    directory = Path(root) / "geometry" / DatasetLayout(root, split).split
    return directory / f"{name}.json", directory / f"{name}.scene.json", directory / f"{name}.grid.png"


def write_ground_truth(root: str | Path, split: str, name: str, truth: SceneGroundTruth) -> None:
    lane_path, scene_path, grid_path = geometry_paths(root, split, name)
    lane_path.parent.mkdir(parents=True, exist_ok=True)
    extrinsic = _extrinsic(truth.pose)
    to_camera = np.linalg.inv(extrinsic)
    lane_lines = []
    for lane in truth.lanes:
        xyz = (to_camera[:3, :3] @ lane.points.T + to_camera[:3, 3:]).T
        uv = (truth.intrinsic @ xyz.T).T
        lane_lines.append(
            {
                "xyz": np.round(xyz.T, 4).tolist(),
                "uv": np.round(uv[:, :2].T / uv[:, 2], 2).tolist(),
                "visibility": lane.visibility.astype(int).tolist(),
                "category": lane.category,
                "attribute": lane.attribute,
                "track_id": lane.track_id,
            }
        )
    openlane = {
        "file_path": f"images/{DatasetLayout(root, split).split}/{name}.jpg",
        "intrinsic": truth.intrinsic.tolist(),
        "extrinsic": extrinsic.tolist(),
        "lane_lines": lane_lines,
    }
    lane_path.write_text(json.dumps(openlane))
    grid = truth.grid
    sidecar = {
        "image_size": [truth.width, truth.height],
        "terrain": "hills" if truth.hilly else "flat",
        "vehicles": [
            {"box": np.round(box, 2).tolist(), "ground_xyz": np.round(xyz, 3).tolist()}
            for box, xyz in zip(truth.boxes, truth.vehicle_ground)
        ],
        "grid": {
            "file": grid_path.name,
            "resolution_m": grid.resolution_m,
            "origin_xy_m": [grid.origin_x_m, grid.origin_y_m],
            "values": {"free": GRID_PNG[FREE], "occupied": GRID_PNG[OCCUPIED], "unknown": GRID_PNG[UNKNOWN]},
        },
    }
    scene_path.write_text(json.dumps(sidecar, indent=1))
    png = np.full(grid.data.shape, GRID_PNG[UNKNOWN], np.uint8)
    png[grid.data == FREE] = GRID_PNG[FREE]
    png[grid.data == OCCUPIED] = GRID_PNG[OCCUPIED]
    cv2.imwrite(str(grid_path), png)


def read_ground_truth(root: str | Path, split: str, name: str) -> SceneGroundTruth | None:
    """The sample's geometry ground truth, or None when the dataset has none for it."""
    lane_path, scene_path, grid_path = geometry_paths(root, split, name)
    if not lane_path.is_file():
        return None
    openlane, sidecar = json.loads(lane_path.read_text()), json.loads(scene_path.read_text())
    extrinsic = np.array(openlane["extrinsic"])
    lanes = [
        GroundTruthLane(
            (extrinsic[:3, :3] @ np.array(line["xyz"]) + extrinsic[:3, 3:]).T,
            np.array(line["visibility"], bool),
            int(line["category"]),
            int(line["attribute"]),
            int(line["track_id"]),
        )
        for line in openlane["lane_lines"]
    ]
    png = cv2.imread(str(grid_path), cv2.IMREAD_GRAYSCALE)
    data = np.full(png.shape, UNKNOWN, np.int8)
    data[png == GRID_PNG[FREE]] = FREE
    data[png == GRID_PNG[OCCUPIED]] = OCCUPIED
    meta = sidecar["grid"]
    vehicles = sidecar["vehicles"]
    width, height = sidecar["image_size"]
    return SceneGroundTruth(
        np.array(openlane["intrinsic"]),
        _pose_from_extrinsic(extrinsic),
        int(width),
        int(height),
        lanes,
        np.array([v["box"] for v in vehicles], np.float32).reshape(-1, 4),
        np.array([v["ground_xyz"] for v in vehicles], np.float64).reshape(-1, 3),
        DrivableGrid(data, float(meta["resolution_m"]), *map(float, meta["origin_xy_m"])),
        sidecar["terrain"] == "hills",
    )


def _pose_from_extrinsic(extrinsic: np.ndarray) -> CameraPose:
    """Inverse of _extrinsic: body rotation Rz(yaw) Ry(pitch) Rx(roll) recovered from the matrix."""
    body = extrinsic[:3, :3] @ OPTICAL_TO_BODY.T
    pitch = float(np.arcsin(-np.clip(body[2, 0], -1, 1)))
    roll = float(np.arctan2(body[2, 1], body[2, 2]))
    yaw = float(np.arctan2(body[1, 0], body[0, 0]))
    x, y, z = (float(v) for v in extrinsic[:3, 3])
    return CameraPose(x, y, z, roll, pitch, yaw)
