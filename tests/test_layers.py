"""The import layering of the package (docs/architecture.md): each layer imports only the layers
below it and itself, also inside functions; no cycle between modules or between packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fewshotkit"
PLUGINS = [p.name for p in (PACKAGE.parent / "plugins").iterdir() if p.is_dir() and p.name.startswith("fewshotkit_")]

#: bottom to top; the packages of one layer may import each other
LAYERS: list[tuple[str, ...]] = [
    ("core",),
    ("host", "interfaces"),
    ("data",),
    ("method",),
    ("evaluation",),
    ("training",),
    ("apps",),
    ("cli", "__main__"),
]
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at module level or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # from fewshotkit import segment
    return names


def package_modules_imported(path: Path) -> set[str]:
    """The package's own modules a file imports (``from a.b import c`` counts ``a.b.c`` when it is a module)."""
    found = set()
    for name in imported_modules(path):
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    found.discard(module_name(path))
    return found


GRAPH = {name: package_modules_imported(path) for name, path in MODULES.items()}


def layer_of(module: str) -> str | None:
    """The top-level package under ``fewshotkit`` a module belongs to (None for the root itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_has_a_layer():
    assert {layer_of(name) for name in MODULES} - {None} <= set(RANK)


@pytest.mark.parametrize("layer", sorted(RANK))
def test_a_layer_imports_only_itself_and_the_layers_below(layer: str):
    offenders = [f"{module} imports {other}" for module, imports in sorted(GRAPH.items()) if layer_of(module) == layer
                 for other in sorted(imports)
                 if layer_of(other) is None or RANK[layer_of(other)] > RANK[layer]]  # type: ignore[index]
    assert not offenders, offenders


def test_no_module_imports_the_package_root():
    """``fewshotkit/__init__.py`` is the public facade over every layer; nothing inside depends on it."""
    offenders = [module for module, imports in GRAPH.items() if "fewshotkit" in imports]
    assert not offenders, offenders


def test_no_cycle_between_modules():
    assert cycles(GRAPH) == []


def test_no_cycle_between_packages():
    def package(module: str) -> str:
        return ".".join(module.split(".")[:3]) if layer_of(module) in ("data", "apps") else ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, imports in GRAPH.items():
        packages.setdefault(package(module), set()).update(package(other) for other in imports
                                                           if package(other) != package(module))
    assert cycles(packages) == []


def test_the_checker_sees_a_violation_and_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert RANK["core"] < RANK["host"] < RANK["data"] < RANK["method"] < RANK["evaluation"] < RANK["training"]
    assert RANK["training"] < RANK["apps"] < RANK["cli"]


def test_the_host_never_imports_the_method_layer():
    offenders = [f"{module} imports {other}" for module, imports in GRAPH.items() if layer_of(module) == "host"
                 for other in imports if layer_of(other) == "method"]
    assert not offenders, offenders


def test_the_core_never_imports_a_builtin_plugin():
    offenders = [f"{path.relative_to(PACKAGE)} imports {name}" for path in sorted(PACKAGE.rglob("*.py"))
                 for name in imported_modules(path) if name.split(".")[0] in PLUGINS]
    assert not offenders, offenders
