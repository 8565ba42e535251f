"""Lane-line instances from a lane mask: row runs -> ground points -> tracked lines -> cubic fits and labels.

Mask rows are scanned at ground spacing `row_spacing_m` (near rows are centimetres apart on the ground, so
scanning all of them would weight the fit to the first metres), each once (ScanRows). Each run of lane
pixels in a row becomes one ground point at its centre; runs wider than a marking are blobs and dropped, and
runs closer than `merge_width_m` merge (a double yellow line is one line). Points are tracked from near to
far: each line predicts its lateral offset at the next row from its local heading, so dashes and short occlusions up to
`max_gap_m` (more far away) join into one line; fragments the tracker still splits (a vehicle hiding a line,
far dashes missing) are joined when their end headings meet. Each line is a cubic fit over its observed range
with per-point `observed` flags, a confidence and a position label. Settings: road.GeometrySettings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ppad_core.geometry.camera import CameraModel
from ppad_core.geometry.road import GeometrySettings, LaneLine, polynomial

# lateral association gate: base + growth per metre of gap (far rows span metres of ground, so a point's
# lateral position along a slanted line is uncertain by that much), capped at a third of a lane
GATE_M, GATE_PER_M, GATE_MAX_M = 0.35, 0.08, 1.2
GAP_PER_RANGE = 0.6  # a line last seen at x bridges gaps up to this fraction of x (far rows miss dashes)
OUTLIER_M = 0.5  # points this far from a line's first fit are a neighbour's, dropped before the refit
OBSERVED_REACH_M = 6.0  # a fit point this close to a seen lane point is observed: dash gaps are, occlusions not
HEADING_WINDOW_M = 8.0  # points this far behind a line's end give its heading


@dataclass
class ScanRows:
    """Rows of a lane mask to scan, at least `row_spacing_m` apart on the ground, with their image rows `v`
    (mask-row centres in image pixels) and the ground point under every pixel edge of them (`ground`
    [rows, width + 1, 2], NaN off the ground), so that a frame interpolates instead of undistorting its
    points. One mask row is scanned once: image rows that share it would repeat its runs at other ranges."""

    mask_height: int
    mask_rows: np.ndarray
    v: np.ndarray
    ground: np.ndarray

    @classmethod
    def for_camera(cls, camera: CameraModel, settings: GeometrySettings, mask_height: int | None = None) -> ScanRows:
        """Scan rows of masks `mask_height` rows high (default the image's) covering the calibrated image."""
        mask_height = mask_height or camera.height
        all_rows = np.arange(mask_height)
        all_v = (all_rows + 0.5) * (camera.height / mask_height) - 0.5
        centre = np.stack([np.full(mask_height, (camera.width - 1) / 2), all_v], axis=1)
        x = camera.pixel_to_ground(centre, settings.max_range_m)[:, 0]
        chosen, last = [], np.inf
        for row in all_rows[::-1]:  # bottom (near) to top (far)
            if np.isfinite(x[row]) and abs(x[row] - last) >= settings.row_spacing_m:
                chosen.append(row)
                last = x[row]
        rows = np.array(chosen[::-1], np.int64)
        edges = np.arange(camera.width + 1) - 0.5
        u, v = np.meshgrid(edges, all_v[rows])
        ground = camera.pixel_to_ground(np.stack([u.ravel(), v.ravel()], 1), settings.max_range_m)
        return cls(mask_height, rows, all_v[rows], ground.reshape(len(rows), camera.width + 1, 2))

    def ground_at(self, scan_index: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Ground points [N, 2] at image column `u` (pixel-centre coordinates) of the scanned rows."""
        position = np.clip(u + 0.5, 0, self.ground.shape[1] - 1)
        left = np.minimum(position.astype(np.int64), self.ground.shape[1] - 2)
        weight = (position - left)[:, None]
        return self.ground[scan_index, left] * (1 - weight) + self.ground[scan_index, left + 1] * weight


def row_runs(mask_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of nonzero pixels in each row of `mask_rows` [R, W]: (row index, first column, last column)."""
    rows, width = mask_rows.shape
    padded = np.zeros((rows, width + 2), bool)
    padded[:, 1:-1] = mask_rows
    # in each padded row the changes alternate: run start, run end (exclusive), start, ...
    changes = np.flatnonzero(padded[:, 1:] != padded[:, :-1]).reshape(-1, 2)
    row, start = np.divmod(changes[:, 0], width + 1)
    return row, start, changes[:, 1] % (width + 1) - 1


@dataclass
class GroundPoints:
    """Lane points on the ground, ordered near to far by scan row: x, y, probability, scan-row index."""

    xy: np.ndarray
    probability: np.ndarray
    row: np.ndarray


def lane_points(
    lane_mask: np.ndarray,
    camera: CameraModel,
    scan: ScanRows,
    settings: GeometrySettings,
    probability: np.ndarray | None = None,
) -> GroundPoints:
    """One ground point per lane-mask run on the scanned rows; the mask may be at any resolution of the image
    (`scan` is for its height)."""
    if lane_mask.shape[0] != scan.mask_height:
        raise ValueError(f"lane mask of {lane_mask.shape[0]} rows, scan rows for {scan.mask_height}")
    scale_u = camera.width / lane_mask.shape[1]
    run_row, first, last = row_runs(lane_mask[scan.mask_rows])
    # outer edges of each run in image pixels (pixel centres at integers, as OpenCV's), and its centre
    left, right = first * scale_u - 0.5, (last + 1.0) * scale_u - 0.5
    centre = (left + right) / 2
    ground = scan.ground_at(np.tile(run_row, 3), np.concatenate([centre, left, right])).reshape(3, len(centre), 2)
    width = np.abs(ground[1, :, 1] - ground[2, :, 1])
    keep = np.isfinite(ground[0]).all(1) & (width <= settings.max_marking_width_m)
    run_row, centre = run_row[keep], centre[keep]
    if probability is None:
        prob = np.ones(len(run_row))
    else:
        prob = _probability_at(probability, centre, scan.v[run_row], camera)
    points = GroundPoints(ground[0][keep], prob, run_row)
    return _merge_close(points, settings.merge_width_m)


def _probability_at(logits: np.ndarray, u: np.ndarray, v: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Sigmoid of the lane logits at image pixels (u, v); `logits` covers the whole image at its own size."""
    height, width = logits.shape
    cols = np.clip(((u + 0.5) * width / camera.width).astype(np.int64), 0, width - 1)
    rows = np.clip(((v + 0.5) * height / camera.height).astype(np.int64), 0, height - 1)
    return 1.0 / (1.0 + np.exp(-logits[rows, cols].astype(np.float64)))


def _merge_close(points: GroundPoints, merge_width: float) -> GroundPoints:
    """Runs of one row closer than `merge_width` on the ground become one point at their mean."""
    if len(points.row) < 2:
        return points
    order = np.lexsort((-points.xy[:, 1], points.row))  # per row, left (large y) to right
    xy, prob, row = points.xy[order], points.probability[order], points.row[order]
    new_group = np.ones(len(row), bool)
    new_group[1:] = (row[1:] != row[:-1]) | (xy[:-1, 1] - xy[1:, 1] >= merge_width)
    group = np.cumsum(new_group) - 1
    counts = np.bincount(group)
    merged_xy = np.stack([np.bincount(group, xy[:, i]) / counts for i in range(2)], axis=1)
    return GroundPoints(merged_xy, np.bincount(group, prob) / counts, row[new_group])


class _Track:
    """A line being followed: its points, a least-squares heading over the last HEADING_WINDOW_M metres (running
    sums over the points from `window_start` on), and the farthest x at which it may still take a point
    (`reach_x`: the gap it bridges grows with range)."""

    __slots__ = ("indices", "window_start", "sums", "heading", "last_x", "last_y", "reach_x", "max_gap")

    def __init__(self, index: int, x: float, y: float, max_gap: float) -> None:
        self.indices = [index]
        self.window_start = 0
        self.sums = [x, y, x * x, x * y]  # over the window
        self.heading = 0.0
        self.max_gap = max_gap
        self.last_x, self.last_y = x, y
        # far rows see metres of ground each and miss most thin dashes
        self.reach_x = x + max(max_gap, GAP_PER_RANGE * x)

    def add(self, index: int, xs: list[float], ys: list[float]) -> None:
        x, y = xs[index], ys[index]
        self.indices.append(index)
        self.last_x, self.last_y = x, y
        self.reach_x = x + max(self.max_gap, GAP_PER_RANGE * x)
        sums = self.sums
        sums[0] += x
        sums[1] += y
        sums[2] += x * x
        sums[3] += x * y
        indices, start = self.indices, self.window_start
        while xs[indices[start]] < x - HEADING_WINDOW_M:
            old_x, old_y = xs[indices[start]], ys[indices[start]]
            sums[0] -= old_x
            sums[1] -= old_y
            sums[2] -= old_x * old_x
            sums[3] -= old_x * old_y
            start += 1
        self.window_start = start
        n = len(indices) - start
        sx, sy, sxx, sxy = sums
        spread = n * sxx - sx * sx
        if n >= 3 and spread > n * n * 0.1:  # the window spans about a metre or more
            self.heading = (n * sxy - sx * sy) / spread


def track_lines(points: GroundPoints, settings: GeometrySettings) -> list[np.ndarray]:
    """Point indices of each line, joined near to far across dashes and gaps (plain Python: a frame has a few
    hundred points, and per-point numpy calls would cost more than the arithmetic)."""
    tracks: list[_Track] = []
    live: list[_Track] = []
    xs, ys = points.xy[:, 0].tolist(), points.xy[:, 1].tolist()
    # points are grouped by scan row, which is indexed far to near: walk the groups near first
    bounds = [0, *(np.flatnonzero(np.diff(points.row)) + 1).tolist(), len(xs)]
    for start, stop in reversed(list(zip(bounds[:-1], bounds[1:]))):
        if start == stop:
            continue
        x = xs[start]
        live = [t for t in live if x <= t.reach_x]
        taken = _associate(range(start, stop), live, xs, ys)
        started = [_Track(i, xs[i], ys[i], settings.max_gap_m) for i in range(start, stop) if i not in taken]
        tracks += started
        live += started
    return [np.array(t.indices) for t in tracks]


def _associate(candidates: range, live: list[_Track], xs: list[float], ys: list[float]) -> set[int]:
    """Give each live track its nearest candidate within the lateral gate, closest pairs first (ties: the
    earlier track, then the earlier candidate). Inlined arithmetic: this runs for every scan row."""
    pairs = []
    for k, track in enumerate(live):
        last_x, last_y, heading = track.last_x, track.last_y, track.heading
        for i in candidates:
            gap = xs[i] - last_x
            gap = gap if gap > 0.0 else 0.0
            error = abs(ys[i] - last_y - heading * gap)
            if error <= GATE_MAX_M and error <= GATE_M + GATE_PER_M * gap:
                pairs.append((error, k, i))
    if not pairs:
        return set()
    if len(pairs) > 1:
        pairs.sort()
    used_tracks, taken = set(), set()
    for _, k, i in pairs:
        if k not in used_tracks and i not in taken:
            used_tracks.add(k)
            taken.add(i)
            live[k].add(i, xs, ys)
    return taken


def _fragment_ends(xy: np.ndarray, tracks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, heading) [T, 3] at the far end and at the near end of each fragment, each from a line fitted to
    the HEADING_WINDOW_M metres there; a fragment of fewer than 3 points gives its end points and no heading.
    All fragments at once: a frame has a handful, and per-fragment numpy calls would cost more than the
    arithmetic."""
    lengths = np.array([len(t) for t in tracks])
    owner = np.repeat(np.arange(len(tracks)), lengths)
    points = xy[np.concatenate(tracks)]
    x, y = points[:, 0], points[:, 1]
    first = np.cumsum(lengths) - lengths
    sides = []
    for end in (np.maximum.reduceat(x, first), np.minimum.reduceat(x, first)):
        near = (np.abs(x - end[owner]) <= HEADING_WINDOW_M).astype(np.float64)
        count = np.bincount(owner, near)
        mean_x, mean_y = np.bincount(owner, near * x) / count, np.bincount(owner, near * y) / count
        dx = (x - mean_x[owner]) * near
        spread = np.bincount(owner, dx * dx)
        slope = np.where(spread > 0.25, np.bincount(owner, dx * (y - mean_y[owner])) / np.maximum(spread, 0.25), 0.0)
        sides.append(np.stack([end, mean_y + slope * (end - mean_x), slope], 1))
    for k in np.flatnonzero(lengths < 3):  # a lone far point: its position, no heading
        stretch = points[first[k] : first[k] + lengths[k]]
        for side, pick in zip(sides, (np.argmax, np.argmin)):
            side[k] = *stretch[pick(stretch[:, 0])], 0.0
    return sides[0], sides[1]


def join_fragments(xy: np.ndarray, tracks: list[np.ndarray], settings: GeometrySettings) -> list[np.ndarray]:
    """Join fragments of one line that the tracker split (a vehicle hiding a stretch, far dashes missing):
    B continues A when it starts where A ends or later and each one's end heading meets the other's end.
    The closest such pair joins first, until none is left."""
    tracks = list(tracks)
    if len(tracks) < 2:
        return tracks
    ends, starts = _fragment_ends(xy, tracks)  # A side: x, y, heading at the end; B side: at the start
    while len(tracks) > 1:
        gap = starts[None, :, 0] - ends[:, None, 0]
        forward = ends[:, None, 1] + ends[:, None, 2] * gap - starts[None, :, 1]
        backward = starts[None, :, 1] - starts[None, :, 2] * gap - ends[:, None, 1]
        error = np.maximum(np.abs(forward), np.abs(backward))
        # twice the tracker's reach: a vehicle ahead hides tens of metres of its neighbours' lines
        reach = np.maximum(2 * settings.max_gap_m, GAP_PER_RANGE * ends[:, None, 0])
        gate = np.minimum(GATE_M + GATE_PER_M * np.maximum(gap, 0), GATE_MAX_M)
        allowed = (gap >= -1.0) & (gap <= reach) & (error <= gate)
        allowed &= np.array([len(t) >= 2 for t in tracks])[:, None]
        np.fill_diagonal(allowed, False)
        if not allowed.any():
            break
        a, b = np.unravel_index(np.argmin(np.where(allowed, error, np.inf)), error.shape)
        tracks[a] = np.concatenate([tracks[a], tracks[b]])
        (ends[a],), (starts[a],) = _fragment_ends(xy, [tracks[a]])
        keep = np.arange(len(tracks)) != b
        tracks, ends, starts = [t for t, k in zip(tracks, keep) if k], ends[keep], starts[keep]
    return tracks


def _polyfit(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares coefficients c0..c_degree of y(x), solved in x / max|x| so the system stays conditioned
    (normal equations; lstsq when points on only a few distinct x, as joined fragments can be, leave them
    singular)."""
    scale = float(np.abs(x).max())
    vandermonde = (x[:, None] / scale) ** np.arange(degree + 1)
    try:
        solved = np.linalg.solve(vandermonde.T @ vandermonde, vandermonde.T @ y)
    except np.linalg.LinAlgError:
        solved = np.linalg.lstsq(vandermonde, y, rcond=None)[0]
    return solved / scale ** np.arange(degree + 1)


def fit_line(xy: np.ndarray, probability: np.ndarray, settings: GeometrySettings) -> LaneLine | None:
    """Cubic fit over the observed x range (lower degree on short lines), refitted once without the points
    farther than OUTLIER_M from the first fit (a far point of a neighbouring line); None for blobs and faint
    lines. Range, confidence and `observed` describe the points of the final fit."""
    if len(xy) < settings.min_line_points or float(probability.sum()) / len(xy) < settings.min_confidence:
        return None
    x, y = xy[:, 0], xy[:, 1]
    fitted = _fit(x, y, settings)
    if fitted is None:
        return None
    inliers = np.abs(polynomial(fitted, x) - y) <= OUTLIER_M
    if not inliers.all():
        x, y, probability = x[inliers], y[inliers], probability[inliers]
        fitted = _fit(x, y, settings) if len(x) >= settings.min_line_points else None
        if fitted is None:
            return None
    seen = np.sort(x)
    x_min, x_max = float(seen[0]), float(seen[-1])
    coefficients = tuple(fitted.tolist()) + (0.0,) * (4 - len(fitted))
    # every path_step_m from x_min, and x_max (np.arange's count, one more slot for the end)
    samples = x_min + settings.path_step_m * np.arange(math.ceil((x_max - x_min) / settings.path_step_m) + 1)
    samples[-1] = x_max
    points = np.empty((len(samples), 2))
    points[:, 0], points[:, 1] = samples, polynomial(coefficients, samples)
    # a sample is observed when a seen point lies within OBSERVED_REACH_M of it
    observed = np.searchsorted(seen, samples + OBSERVED_REACH_M, "right") > np.searchsorted(
        seen, samples - OBSERVED_REACH_M, "left"
    )
    confidence = float(probability.sum()) / len(probability)
    return LaneLine(points, coefficients, (x_min, x_max), confidence, "other", observed)


def _fit(x: np.ndarray, y: np.ndarray, settings: GeometrySettings) -> np.ndarray | None:
    """Coefficients of the degree the observed span allows (1 below 10 m, 2 below 25 m, else 3); None when the
    line is shorter than min_line_length_m."""
    span = float(x.max() - x.min())
    if span < settings.min_line_length_m:
        return None
    return _polyfit(x, y, 1 if span < 10 else 2 if span < 25 else 3)


def label_lines(lines: list[LaneLine], settings: GeometrySettings) -> list[LaneLine]:
    """Position labels from each line's lateral offset at x = 0 (left is +y), nearest first on each side."""
    offsets = [float(line.y_at(0.0)) for line in lines]
    labels = ["other"] * len(lines)
    for side, names in ((1, ("ego_left", "left_2")), (-1, ("ego_right", "right_2"))):
        ranked = sorted((side * y, i) for i, y in enumerate(offsets) if side * y > 0)
        previous = 0.0
        for (offset, i), name in zip(ranked, names):
            limit = settings.max_ego_offset_m if name.startswith("ego") else 1.6 * settings.lane_width_m
            if offset - previous > limit:
                break
            labels[i], previous = name, offset
    return [replace(line, label=label) for line, label in zip(lines, labels)]


def ego_path(lines: list[LaneLine], settings: GeometrySettings) -> np.ndarray:
    """The ego lane's centre [n, 2]: the mean of ego_left and ego_right where both are seen, else one of them
    shifted by half `lane_width_m`; empty without either."""
    by_label = {line.label: line for line in lines}
    left, right = by_label.get("ego_left"), by_label.get("ego_right")
    if left and right:
        x_min, x_max = max(left.x_range[0], right.x_range[0]), min(left.x_range[1], right.x_range[1])
        if x_max <= x_min:
            x_min, x_max = min(left.x_range[0], right.x_range[0]), max(left.x_range[1], right.x_range[1])
        xs = np.append(np.arange(x_min, x_max, settings.path_step_m), x_max)
        return np.stack([xs, (left.y_at(xs) + right.y_at(xs)) / 2], 1)
    side = left or right
    if side is None:
        return np.zeros((0, 2))
    shift = -settings.lane_width_m / 2 if side is left else settings.lane_width_m / 2
    xs = side.points[:, 0]
    return np.stack([xs, side.y_at(xs) + shift], 1)


def extract_lanes(
    lane_mask: np.ndarray,
    camera: CameraModel,
    scan: ScanRows,
    settings: GeometrySettings,
    lane_logits: np.ndarray | None = None,
) -> list[LaneLine]:
    """Labelled lane lines, ordered left to right by their offset at x = 0."""
    points = lane_points(lane_mask, camera, scan, settings, lane_logits)
    lines = []
    for indices in join_fragments(points.xy, track_lines(points, settings), settings):
        line = fit_line(points.xy[indices], points.probability[indices], settings)
        if line is not None:
            lines.append(line)
    lines.sort(key=lambda line: -float(line.y_at(0.0)))
    return label_lines(lines, settings)
