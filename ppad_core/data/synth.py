"""Procedural driving scenes in the RMT-PPAD layout: images, vehicle boxes, drivable-area and lane masks.

A pinhole camera looks down a road described in road coordinates (lateral offset x, distance z): the
road bends (heading + curvature) and rolls over hills, has 2-4 lanes with dashed/solid white and
yellow markings, and carries vehicles seen from behind (same direction) or from the front (oncoming
lanes). Trees, poles, buildings and signs stand beside it. Everything is drawn far to near, so nearer
things occlude farther ones in the image and in both masks. Lighting, tint, night, blur and sensor
noise vary per scene. Each scene is a pure function of (seed, split, index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

LANE_WIDTH = (3.2, 3.8)
DASH_ON, DASH_PERIOD = 3.0, 9.0
MARK_HALF_WIDTH = 0.07
VEHICLE_TYPES = (  # name, width (m), height (m), probability
    ("car", 1.8, 1.45, 0.55),
    ("suv", 1.95, 1.8, 0.2),
    ("truck", 2.4, 3.1, 0.15),
    ("bus", 2.5, 3.2, 0.10),
)


@dataclass
class Camera:
    width: int
    height: int
    focal: float
    horizon: float
    height_m: float

    def project(self, x: np.ndarray, z: np.ndarray, y_up: np.ndarray | float, road) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates of road-frame points (lateral x, distance z, height above the road y_up)."""
        lateral = x + road.centre_offset(z)
        vertical = self.height_m - road.elevation(z) - y_up
        return self.width / 2 + self.focal * lateral / z, self.horizon + self.focal * vertical / z


@dataclass
class Road:
    heading: float
    curvature: float
    hill_amplitude: float
    hill_length: float
    lane_width: float
    lanes: int
    ego_lane: int
    ego_offset: float
    oncoming_lanes: int
    markings: list[tuple[float, str, bool]] = field(default_factory=list)  # lateral x, colour, dashed

    def centre_offset(self, z):
        return self.heading * z + self.curvature * z**2

    def elevation(self, z):
        return self.hill_amplitude * (1 - np.cos(np.minimum(z, 3 * self.hill_length) / self.hill_length * math.pi))

    @property
    def left_edge(self) -> float:
        return -(self.ego_lane + 0.5) * self.lane_width - self.ego_offset

    @property
    def right_edge(self) -> float:
        return self.left_edge + self.lanes * self.lane_width

    def lane_centre(self, lane: int) -> float:
        return self.left_edge + (lane + 0.5) * self.lane_width


@dataclass
class Scene:
    image: np.ndarray  # BGR uint8
    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2 in pixels
    drivable: np.ndarray  # uint8 0/255
    lane: np.ndarray  # uint8 0/255
    camera: Camera
    road: Road
    vehicle_positions: np.ndarray  # [N, 2] road frame (lateral x, distance z) of each box's bottom centre


def _colour(rng, base, spread=25):
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in base)


class SceneRenderer:
    def __init__(self, rng: np.random.Generator, width: int = 1280, height: int = 720) -> None:
        self.rng = rng
        fov = math.radians(rng.uniform(55, 70))
        self.camera = Camera(
            width, height, width / (2 * math.tan(fov / 2)), height * rng.uniform(0.38, 0.5), rng.uniform(1.3, 1.7)
        )
        self.road = self._make_road()
        self.image = np.zeros((height, width, 3), np.uint8)
        self.drivable = np.zeros((height, width), np.uint8)
        self.lane = np.zeros((height, width), np.uint8)
        self.boxes: list[list[float]] = []
        self.vehicle_positions: list[tuple[float, float]] = []

    def _make_road(self) -> Road:
        rng = self.rng
        lanes = int(rng.integers(2, 5))
        oncoming = int(rng.integers(1, lanes)) if lanes >= 2 and rng.random() < 0.35 else 0
        road = Road(
            heading=rng.uniform(-0.06, 0.06),
            curvature=rng.uniform(-0.0015, 0.0015),
            hill_amplitude=rng.uniform(-1.5, 2.5) if rng.random() < 0.5 else 0.0,
            hill_length=rng.uniform(30, 80),
            lane_width=rng.uniform(*LANE_WIDTH),
            lanes=lanes,
            ego_lane=int(rng.integers(oncoming, lanes)),
            ego_offset=rng.uniform(-0.4, 0.4),
            oncoming_lanes=oncoming,
        )
        edge_colour = "yellow" if rng.random() < 0.3 else "white"
        road.markings.append((road.left_edge + 0.15, edge_colour, False))
        road.markings.append((road.right_edge - 0.15, "white", rng.random() < 0.15))
        for i in range(1, lanes):
            x = road.left_edge + i * road.lane_width
            if i == oncoming:
                road.markings += [(x - 0.12, "yellow", False), (x + 0.12, "yellow", False)]
            else:
                road.markings.append((x, "white", rng.random() < 0.85))
        return road

    def render(self) -> Scene:
        self._draw_background()
        items = self._road_slices() + self._vehicles() + self._clutter()
        for _depth, draw in sorted(items, key=lambda item: -item[0]):
            draw()
        self._lighting_and_sensor()
        boxes = np.array(self.boxes, np.float32).reshape(-1, 4)
        positions = np.array(self.vehicle_positions, np.float64).reshape(-1, 2)
        return Scene(self.image, boxes, self.drivable, self.lane, self.camera, self.road, positions)

    def _draw_background(self) -> None:
        rng, cam = self.rng, self.camera
        horizon = int(cam.horizon - cam.focal * self.road.elevation(np.array([150.0]))[0] / 150)
        sky_top, sky_bottom = _colour(rng, (200, 150, 110), 30), _colour(rng, (235, 215, 190), 20)
        ramp = np.linspace(0, 1, max(horizon, 1))[:, None, None]
        self.image[:horizon] = (np.array(sky_top) * (1 - ramp) + np.array(sky_bottom) * ramp).astype(np.uint8)
        ground = _colour(rng, (60, 120, 90) if rng.random() < 0.7 else (90, 130, 150), 25)
        self.image[horizon:] = ground
        texture = rng.normal(0, 10, (cam.height - horizon, cam.width, 1))
        self.image[horizon:] = np.clip(self.image[horizon:] + texture, 0, 255).astype(np.uint8)

    def _occlude_rect(self, p1, p2, colour) -> None:
        """Paint an opaque rectangle: image gets the colour, both masks lose whatever it covers."""
        p1, p2 = (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1]))
        cv2.rectangle(self.image, p1, p2, colour, -1)
        for mask in (self.drivable, self.lane):
            cv2.rectangle(mask, p1, p2, 0, -1)

    def _occlude_circle(self, centre, radius, colour) -> None:
        centre, radius = (int(centre[0]), int(centre[1])), max(int(radius), 1)
        cv2.circle(self.image, centre, radius, colour, -1)
        for mask in (self.drivable, self.lane):
            cv2.circle(mask, centre, radius, 0, -1)

    def _quad(self, x0, x1, z0, z1) -> np.ndarray:
        xs = np.array([x0, x1, x1, x0])
        zs = np.array([z0, z0, z1, z1])
        u, v = self.camera.project(xs, zs, 0.0, self.road)
        return np.stack([u, v], -1).round().astype(np.int32)

    def _road_slices(self) -> list:
        rng, road = self.rng, self.road
        asphalt = _colour(rng, (95, 95, 100), 25)
        shoulder = _colour(rng, (150, 150, 150), 20) if rng.random() < 0.5 else None
        phases = {i: rng.uniform(0, DASH_PERIOD) for i in range(len(road.markings))}
        paint = {"white": _colour(rng, (235, 235, 235), 15), "yellow": _colour(rng, (40, 190, 230), 15)}
        zs = np.geomspace(1.5, 150.0, 160)
        items = []
        for z0, z1 in zip(zs[:-1], zs[1:]):

            def draw(z0=z0, z1=z1):
                if shoulder is not None:
                    for a, b in ((road.left_edge - 1.5, road.left_edge), (road.right_edge, road.right_edge + 1.5)):
                        quad = self._quad(a, b, z0, z1)
                        cv2.fillPoly(self.image, [quad], shoulder)
                        cv2.fillPoly(self.drivable, [quad], 0)
                        cv2.fillPoly(self.lane, [quad], 0)
                quad = self._quad(road.left_edge, road.right_edge, z0, z1)
                shade = tuple(int(c * (0.9 + 0.1 * math.exp(-z0 / 40))) for c in asphalt)
                cv2.fillPoly(self.image, [quad], shade)
                cv2.fillPoly(self.drivable, [quad], 255)
                cv2.fillPoly(self.lane, [quad], 0)
                for i, (x, colour, dashed) in enumerate(road.markings):
                    for a, b in self._painted_intervals(z0, z1, dashed, phases[i]):
                        quad = self._quad(x - MARK_HALF_WIDTH, x + MARK_HALF_WIDTH, a, b)
                        cv2.fillPoly(self.image, [quad], paint[colour])
                        cv2.fillPoly(self.lane, [quad], 255)

            items.append((z1, draw))  # by far end: a vehicle standing inside a slice is drawn over it
        return items

    @staticmethod
    def _painted_intervals(z0: float, z1: float, dashed: bool, phase: float) -> list[tuple[float, float]]:
        if not dashed:
            return [(z0, z1)]
        intervals = []
        start = math.floor((z0 + phase) / DASH_PERIOD) * DASH_PERIOD - phase
        while start < z1:
            a, b = max(start, z0), min(start + DASH_ON, z1)
            if b > a:
                intervals.append((a, b))
            start += DASH_PERIOD
        return intervals

    def _vehicles(self) -> list:
        rng, road, cam = self.rng, self.road, self.camera
        placed: list[np.ndarray] = []
        items = []
        for _ in range(int(rng.integers(0, 9))):
            name, width, height, _ = VEHICLE_TYPES[rng.choice(len(VEHICLE_TYPES), p=[t[3] for t in VEHICLE_TYPES])]
            width, height = width * rng.uniform(0.92, 1.08), height * rng.uniform(0.92, 1.08)
            parked = rng.random() < 0.12
            lane = int(rng.integers(0, road.lanes))
            x = (road.right_edge + 1.2) if parked else road.lane_centre(lane) + rng.uniform(-0.3, 0.3)
            z = rng.uniform(6, 70)
            u, v = cam.project(np.array([x]), np.array([z]), 0.0, road)
            half, tall = cam.focal * width / z / 2, cam.focal * height / z
            box = np.array([u[0] - half, v[0] - tall, u[0] + half, v[0]])
            if box[2] < 0 or box[0] >= cam.width or box[3] < 0 or box[1] >= cam.height:
                continue
            if any(_overlap(box, other) > 0.35 for other in placed):
                continue
            placed.append(box)
            oncoming = lane < road.oncoming_lanes and not parked
            items.append(
                (
                    z,
                    lambda box=box, x=x, z=z, name=name, oncoming=oncoming: self._draw_vehicle(
                        box, x, z, name, oncoming
                    ),
                )
            )
        return items

    def _draw_vehicle(self, box: np.ndarray, x: float, z: float, kind: str, oncoming: bool) -> None:
        rng = self.rng
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        body = _colour(
            rng,
            [(30, 30, 160), (160, 60, 30), (200, 200, 200), (40, 40, 40), (30, 140, 200), (90, 90, 90), (20, 90, 20)][
                rng.integers(0, 7)
            ],
            30,
        )

        def rect(a, b, c, d, colour):
            self._occlude_rect((x1 + a * w, y1 + b * h), (x1 + c * w, y1 + d * h), colour)

        shadow = (
            np.array(
                [[x1 - 0.05 * w, y2 - 0.04 * h], [x2 + 0.05 * w, y2 - 0.04 * h], [x2 + 0.1 * w, y2], [x1 - 0.1 * w, y2]]
            )
            .round()
            .astype(np.int32)
        )
        cv2.fillPoly(self.image, [shadow], (25, 25, 25))
        rect(0.0, 0.86, 0.2, 1.0, (15, 15, 15))  # wheels
        rect(0.8, 0.86, 1.0, 1.0, (15, 15, 15))
        top = 0.0 if kind in ("truck", "bus") else 0.08
        rect(0.02, top, 0.98, 0.9, body)
        if kind == "car" or kind == "suv":
            rect(0.14, top + 0.05, 0.86, 0.42, _colour(rng, (70, 50, 40), 15))  # rear/front window
        elif kind == "bus":
            rect(0.06, 0.1, 0.94, 0.45, _colour(rng, (80, 60, 40), 15))
        lights = (200, 230, 240) if oncoming else (30, 30, 220)
        rect(0.04, 0.55, 0.2, 0.66, lights)
        rect(0.8, 0.55, 0.96, 0.66, lights)
        rect(0.3, 0.72, 0.7, 0.8, (200, 200, 200) if rng.random() < 0.5 else (20, 20, 20))  # plate
        x1c, y1c = max(x1, 0.0), max(y1, 0.0)
        x2c, y2c = min(x2, self.camera.width - 1.0), min(y2, self.camera.height - 1.0)
        if x2c - x1c >= 4 and y2c - y1c >= 4:
            self.boxes.append([x1c, y1c, x2c, y2c])
            self.vehicle_positions.append((x, z))

    def _clutter(self) -> list:
        rng, road = self.rng, self.road
        items = []
        for _ in range(int(rng.integers(4, 16))):
            side = -1 if rng.random() < 0.5 else 1
            edge = road.left_edge if side < 0 else road.right_edge
            x = edge + side * rng.uniform(2.0, 14.0)
            z = rng.uniform(4, 120)
            kind = rng.choice(["tree", "pole", "building", "sign"], p=[0.45, 0.2, 0.2, 0.15])
            items.append((z, lambda x=x, z=z, kind=kind: self._draw_clutter(x, z, kind)))
        return items

    def _draw_clutter(self, x: float, z: float, kind: str) -> None:
        rng, cam, road = self.rng, self.camera, self.road
        u, v = cam.project(np.array([x]), np.array([z]), 0.0, road)
        u, v, scale = float(u[0]), float(v[0]), cam.focal / z
        if kind == "tree":
            trunk_h, radius = rng.uniform(2, 4) * scale, rng.uniform(1.5, 3.0) * scale
            self._occlude_rect((u - 0.15 * scale, v - trunk_h), (u + 0.15 * scale, v), _colour(rng, (40, 60, 90), 15))
            self._occlude_circle((u, v - trunk_h - radius * 0.6), radius, _colour(rng, (40, 110, 50), 30))
        elif kind == "pole":
            self._occlude_rect(
                (u - 0.1 * scale, v - 7 * scale), (u + 0.1 * scale, v), _colour(rng, (120, 120, 120), 20)
            )
        elif kind == "building":
            w, h = rng.uniform(6, 15) * scale, rng.uniform(5, 20) * scale
            self._occlude_rect((u - w / 2, v - h), (u + w / 2, v), _colour(rng, (130, 140, 160), 40))
            for wx in np.arange(u - w / 2 + 0.1 * w, u + w / 2 - 0.1 * w, max(0.15 * w, 2)):
                self._occlude_rect((wx, v - 0.8 * h), (wx + 0.06 * w, v - 0.2 * h), (60, 60, 70))
        else:
            self._occlude_rect((u - 0.05 * scale, v - 2.5 * scale), (u + 0.05 * scale, v), (100, 100, 100))
            colour = [(30, 30, 200), (200, 120, 30), (30, 200, 230)][rng.integers(0, 3)]
            self._occlude_rect((u - 0.4 * scale, v - 3.2 * scale), (u + 0.4 * scale, v - 2.4 * scale), colour)

    def _lighting_and_sensor(self) -> None:
        rng = self.rng
        image = self.image.astype(np.float32)
        if rng.random() < 0.35:  # cast shadows across the road
            for _ in range(int(rng.integers(1, 4))):
                cx, cy = rng.uniform(0, self.camera.width), rng.uniform(self.camera.horizon, self.camera.height)
                axes = (int(rng.uniform(40, 250)), int(rng.uniform(10, 50)))
                shadow = np.zeros(image.shape[:2], np.uint8)
                cv2.ellipse(shadow, (int(cx), int(cy)), axes, rng.uniform(-20, 20), 0, 360, 1, -1)
                image[shadow > 0] *= rng.uniform(0.5, 0.75)
        night = rng.random() < 0.12
        gain = rng.uniform(0.3, 0.5) if night else rng.uniform(0.65, 1.25)
        tint = rng.uniform(0.9, 1.1, size=3)
        image = image * gain * tint + rng.uniform(-15, 15)
        if rng.random() < 0.35:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.6))
        if rng.random() < 0.1:
            k = int(rng.integers(5, 12))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2] = 1.0 / k
            image = cv2.filter2D(image, -1, kernel)
        image += rng.normal(0, rng.uniform(1, 8), image.shape)
        self.image = np.clip(image, 0, 255).astype(np.uint8)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(smaller, 1e-6)


SPLIT_OFFSETS = {"train": 0, "val": 1}


def scene_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, SPLIT_OFFSETS.get(split, 2), index])


def render_scene(seed: int, split: str, index: int, width: int = 1280, height: int = 720) -> Scene:
    """The scene is a pure function of its arguments."""
    return SceneRenderer(np.random.default_rng(scene_seed(seed, split, index)), width, height).render()


def _write_one(job: tuple) -> None:
    from ppad_core.data.layout import DatasetLayout
    from ppad_core.data.scene_geometry import scene_ground_truth, write_ground_truth
    from ppad_core.data.writer import write_sample

    root, split, seed, index, width, height, geometry_only = job
    scene = render_scene(seed, split, index, width, height)
    name = f"{split}_{seed}_{index:06d}"
    if not geometry_only:
        labels = np.zeros(len(scene.boxes), np.int64)
        write_sample(
            DatasetLayout(root, split).sample(name), scene.image, scene.boxes, labels, scene.drivable, scene.lane
        )
    write_ground_truth(root, split, name, scene_ground_truth(scene))


def generate_dataset(
    root,
    counts: dict[str, int],
    seed: int,
    width: int = 1280,
    height: int = 720,
    workers: int = 2,
    progress: bool = True,
    geometry_only: bool = False,
) -> dict[str, int]:
    """Write `counts[split]` scenes per split (train/val) in the RMT-PPAD layout with their road-geometry ground
    truth (scene_geometry.py); `geometry_only` adds that ground truth to scenes already written. Returns the
    counts."""
    from multiprocessing import get_context

    from rich.progress import Progress

    from ppad_core.data.layout import DatasetLayout

    jobs = []
    for split, count in counts.items():
        DatasetLayout(root, split).make_dirs()
        jobs += [(str(root), split, seed, i, width, height, geometry_only) for i in range(count)]
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("rendering scenes", total=len(jobs))
        if workers > 1:
            with get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(_write_one, jobs, chunksize=8):
                    bar.advance(task)
        else:
            for job in jobs:
                _write_one(job)
                bar.advance(task)
    return counts
