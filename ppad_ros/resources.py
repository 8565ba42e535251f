"""Finding the package's files: as given (absolute or relative to the working directory), else in the
installed ROS share folder (share/ppad_ros), else in the source checkout this module runs from.

The one place that knows the ROS install layout; checkpoints, parameter files and configs are all
looked up here."""

from __future__ import annotations

from pathlib import Path

PACKAGE = "ppad_ros"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path | None:
    """share/ppad_ros of the installed package, or None outside an ament install."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH (no ROS environment)
        return None


def search_roots() -> list[Path]:
    """Where a relative resource path is tried after the working directory, in order."""
    share = share_dir()
    return ([share] if share is not None else []) + [SOURCE_ROOT]


def find_resource(path: str | Path, kind: str = "file") -> Path:
    """The first existing file or folder `path` names; FileNotFoundError names the `kind` and every place tried."""
    path = Path(path)
    candidates = [path] + ([] if path.is_absolute() else [root / path for root in search_roots()])
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{kind} {str(path)!r} not found (looked in: {', '.join(map(str, candidates))})")


def config_dir() -> Path:
    """config/ of the installed package, else of the source checkout."""
    for root in search_roots():
        if (root / "config").is_dir():
            return root / "config"
    return SOURCE_ROOT / "config"
