"""The drivable mask as a bird's-eye occupancy grid in base_link, and the drivable region's edges along the ego lane.

Every cell centre is projected once into the image (flat ground); per frame the grid is one nearest-neighbour
gather from the mask, so its cost does not depend on the camera. Cells outside the image or beyond
`max_range_m` are unknown. A cell whose pixel shows something standing on the road (a vehicle) is occupied:
the flat-ground assumption puts such pixels on the ground behind the object (road_geometry.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ppad_core.geometry.camera import CameraModel
from ppad_core.geometry.road import FREE, OCCUPIED, UNKNOWN, DrivableGrid, GeometrySettings

OCCUPANCY = np.full(256, FREE, np.int8)  # mask value -> grid value: 0 occupied, any other value drivable
OCCUPANCY[0] = OCCUPIED


def grid_cells(settings: GeometrySettings) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Cell-centre x of every column and y of every row, and the origin (x, y) of cell (0, 0): the one layout
    of the drivable grid, for predictions and ground truth alike."""
    res = settings.grid_resolution_m
    columns = int(round((settings.grid_x_max_m - settings.grid_x_min_m) / res))
    rows = int(round(2 * settings.grid_y_half_width_m / res))
    origin_x, origin_y = settings.grid_x_min_m, -settings.grid_y_half_width_m
    return origin_x + (np.arange(columns) + 0.5) * res, origin_y + (np.arange(rows) + 0.5) * res, origin_x, origin_y


@dataclass(frozen=True)
class GridLookup:
    """For every grid cell, the image pixel it sees (u, v, pixel centres at integers), or `unseen`."""

    map_u: np.ndarray
    map_v: np.ndarray
    unseen: np.ndarray  # [rows, columns] bool
    resolution_m: float
    origin_x_m: float
    origin_y_m: float
    _index_by_shape: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_camera(cls, camera: CameraModel, settings: GeometrySettings) -> GridLookup:
        x, y, origin_x, origin_y = grid_cells(settings)
        xx, yy = np.meshgrid(x, y)
        cells = np.stack([xx.ravel(), yy.ravel()], 1)
        pixels = camera.ground_to_pixel(cells).reshape(len(y), len(x), 2)
        seen = np.isfinite(pixels).all(-1) & (np.hypot(xx, yy) <= settings.max_range_m)
        seen &= (pixels[..., 0] >= -0.5) & (pixels[..., 0] < camera.width - 0.5)
        seen &= (pixels[..., 1] >= -0.5) & (pixels[..., 1] < camera.height - 0.5)
        # strong distortion folds rays far off-axis back into the image: keep cells whose pixel sees them
        back = camera.pixel_to_ground(np.where(seen[..., None], pixels, 0).reshape(-1, 2), np.inf).reshape(
            xx.shape + (2,)
        )
        seen &= np.hypot(back[..., 0] - xx, back[..., 1] - yy) <= settings.grid_resolution_m
        pixels[~seen] = 0.0
        return cls(pixels[..., 0], pixels[..., 1], ~seen, settings.grid_resolution_m, origin_x, origin_y)

    def grid(self, drivable_mask: np.ndarray, image_size: tuple[int, int]) -> DrivableGrid:
        """Occupancy from a drivable mask of the image (nonzero = drivable; `image_size` = calibrated width,
        height; any mask size)."""
        looked_up = np.take(drivable_mask.ravel(), self.mask_index(drivable_mask.shape, image_size))
        data = np.take(OCCUPANCY, looked_up)
        np.putmask(data, self.unseen, UNKNOWN)
        return DrivableGrid(data, self.resolution_m, self.origin_x_m, self.origin_y_m)

    def mask_index(self, mask_shape: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
        """Flat index into a mask of `mask_shape` of the pixel nearest each cell's (unseen cells: 0), computed
        once per mask shape: one gather per frame instead of a remap."""
        if mask_shape not in self._index_by_shape:
            scale_u, scale_v = mask_shape[1] / image_size[0], mask_shape[0] / image_size[1]
            u = np.clip(np.floor((self.map_u + 0.5) * scale_u), 0, mask_shape[1] - 1)
            v = np.clip(np.floor((self.map_v + 0.5) * scale_v), 0, mask_shape[0] - 1)
            index = np.where(self.unseen, 0, v.astype(np.intp) * mask_shape[1] + u.astype(np.intp))
            self._index_by_shape[mask_shape] = index
        return self._index_by_shape[mask_shape]


def drivable_boundaries(grid: DrivableGrid, centre: np.ndarray, step_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Left and right edges [n, 2] of the free run that holds the ego-lane centre, every `step_m` ahead.

    `centre` is the ego path [n, 2] (x ascending), y = 0 ahead of the car without one. The edges start where
    the centre is first seen free and stop where it is next not free (an obstacle or the end of what is seen).
    """
    x, y = grid.cell_centres()
    stride = max(int(round(step_m / grid.resolution_m)), 1)
    columns = np.arange(0, len(x), stride)
    centre_y = np.interp(x[columns], centre[:, 0], centre[:, 1]) if len(centre) else np.zeros(len(columns))
    centre_rows = np.clip(np.floor((centre_y - grid.origin_y_m) / grid.resolution_m).astype(int), 0, len(y) - 1)
    free = grid.data[:, columns].T == FREE  # [columns, rows]
    ahead = free[np.arange(len(columns)), centre_rows]
    first = int(np.argmax(ahead)) if ahead.any() else len(columns)  # the car's own surroundings are unseen
    blocked = np.nonzero(~ahead[first:])[0]
    keep = slice(first, first + (blocked[0] if len(blocked) else len(columns) - first))
    free, centre_rows = free[keep], centre_rows[keep]
    rows = np.arange(len(y))[None, :]
    above = ~free & (rows >= centre_rows[:, None])
    below = ~free & (rows <= centre_rows[:, None])
    top = np.where(above.any(1), np.argmax(above, 1), len(y))  # first blocked row left of the centre
    bottom = np.where(below.any(1), len(y) - 1 - np.argmax(below[:, ::-1], 1), -1)  # and right of it
    xs = x[columns[keep]]
    left = np.stack([xs, grid.origin_y_m + top * grid.resolution_m], 1)
    right = np.stack([xs, grid.origin_y_m + (bottom + 1) * grid.resolution_m], 1)
    return left, right
