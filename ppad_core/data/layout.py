"""The RMT-PPAD on-disk layout (docs/evaluation.md, "Data layout"), shared by the reader, converter and generator.

root/images/<split>/<name>.jpg
root/labels/<split>/<name>.txt           YOLO lines "cls cx cy w h", normalised to the image
root/mask/drivable/<split>/<name>.png    single channel, >0 = drivable area
root/mask/lane/<split>/<name>.png        single channel, >0 = lane line
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppad_core.image import IMAGE_SUFFIXES

SEG_TASKS = ("drivable", "lane")
DEFAULT_SPLITS = {"train": "train2017", "val": "val2017"}


@dataclass(frozen=True)
class SamplePaths:
    name: str
    image: Path
    label: Path
    masks: tuple[Path, Path]  # drivable, lane


class DatasetLayout:
    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = DEFAULT_SPLITS.get(split, split)

    @property
    def image_dir(self) -> Path:
        return self.root / "images" / self.split

    @property
    def label_dir(self) -> Path:
        return self.root / "labels" / self.split

    def mask_dir(self, task: str) -> Path:
        return self.root / "mask" / task / self.split

    def sample(self, name: str, image_suffix: str = ".jpg") -> SamplePaths:
        return SamplePaths(
            name,
            self.image_dir / f"{name}{image_suffix}",
            self.label_dir / f"{name}.txt",
            tuple(self.mask_dir(task) / f"{name}.png" for task in SEG_TASKS),
        )

    def samples(self) -> list[SamplePaths]:
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"{self.image_dir}: image folder not found (expected the RMT-PPAD layout)")
        images = sorted(p for p in self.image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        return [self.sample(p.stem, p.suffix) for p in images]

    def make_dirs(self) -> None:
        for directory in (self.image_dir, self.label_dir, *(self.mask_dir(t) for t in SEG_TASKS)):
            directory.mkdir(parents=True, exist_ok=True)


def format_yolo_line(cls: int, box_cxcywh) -> str:
    return f"{cls} " + " ".join(f"{v:.6f}" for v in box_cxcywh)
