"""The import rule, checked from the code's own imports (every import statement, function-level included).

    model <- data <- train,  model <- runtime,  geometry on base alone,  evaluate and compress above them,
    cli on top,
    ppad_ros only above ppad_core;  ppad_core never imports ppad_ros or ROS;  no cycles.

`base` is ppad_core's top-level modules (boxes, _version), below everything; the `ppad_core` facade
(its __init__) re-exports the model API. evaluate sits on data and runtime (it scores a Predictor on a
dataset) and train on evaluate (validation), so a package may import exactly the ones listed under it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

BELOW_TRAIN = {"base", "model", "data", "runtime", "geometry", "evaluate"}
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "geometry": {"base"},
    "model": {"base"},
    "data": {"base", "model", "geometry"},
    "runtime": {"base", "model"},
    "evaluate": {"base", "model", "data", "runtime", "geometry"},
    "train": BELOW_TRAIN,
    "compress": BELOW_TRAIN | {"train"},
    "cli": BELOW_TRAIN | {"train", "compress", "facade"},
    "facade": {"base", "model"},
    "ppad_ros": BELOW_TRAIN | {"train", "compress", "facade", "ros"},
}
ROS_MODULES = {"rclpy", "rosidl_runtime_py", "builtin_interfaces", "std_msgs", "sensor_msgs", "launch", "launch_ros"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package_or_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported(node: ast.AST, importer: str, is_package: bool) -> list[str]:
    """The modules one import statement names (`from pkg import submodule` names the submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: resolved against the importing package
        package = importer.split(".")[: len(importer.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(package + ([base] if base else []))
    submodules = [f"{base}.{alias.name}" for alias in node.names if _is_package_or_module(f"{base}.{alias.name}")]
    return submodules or [base]


def import_edges() -> set[tuple[str, str]]:
    """(importing module, imported module) for every import in ppad_core and ppad_ros."""
    edges = set()
    for root in ("ppad_core", "ppad_ros"):
        for path in sorted((REPO / root).rglob("*.py")):
            importer = _module_name(path)
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                for module in _imported(node, importer, path.name == "__init__.py"):
                    edges.add((importer, module))
    return edges


def layer(module: str) -> str | None:
    """The layer a module belongs to; None for third-party modules the rule does not cover."""
    parts = module.split(".")
    if parts[0] == "ppad_ros":
        return "ppad_ros"
    if parts[0] in ROS_MODULES:
        return "ros"
    if parts[0] != "ppad_core":
        return None
    if len(parts) == 1:
        return "facade"
    if (REPO / "ppad_core" / parts[1]).is_dir():
        return parts[1]
    return "base"


def layer_edges(edges: set[tuple[str, str]]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """Imports between different layers, grouped by (importing layer, imported layer)."""
    grouped: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for importer, module in edges:
        pair = (layer(importer), layer(module))
        if pair[1] is not None and pair[0] != pair[1]:
            grouped.setdefault(pair, set()).add((importer, module))
    return grouped


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*path, node])):
                return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_every_package_of_ppad_core_has_a_layer():
    packages = {p.name for p in (REPO / "ppad_core").iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(ALLOWED), f"place {sorted(packages - set(ALLOWED))} in ALLOWED"
    assert _cycle(ALLOWED) is None


def test_imports_follow_the_layers():
    edges = import_edges()
    violations = {pair: sorted(found) for pair, found in layer_edges(edges).items() if pair[1] not in ALLOWED[pair[0]]}
    assert not violations, f"imports against the rule: {violations}"


def test_no_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for importer, imported in layer_edges(import_edges()):
        graph.setdefault(importer, set()).add(imported)
    assert _cycle(graph) is None, f"import cycle between packages: {_cycle(graph)}"


def test_the_rule_is_enforced_on_a_planted_violation():
    planted = import_edges() | {("ppad_core.train.trainer", "ppad_core.compress.distill")}
    pairs = layer_edges(planted)
    assert ("train", "compress") in pairs and "compress" not in ALLOWED["train"]
    assert layer("rclpy.node") == "ros" and "ros" not in ALLOWED["model"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
