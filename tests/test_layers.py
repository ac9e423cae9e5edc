"""The import layering of the package: lower layers never import higher ones (also inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fewshotkit"
PLUGINS = [p.name for p in (PACKAGE.parent / "plugins").iterdir() if p.is_dir() and p.name.startswith("fewshotkit_")]


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


@pytest.mark.parametrize("lower, higher", [("store", "fewshotkit.ingest"), ("store", "fewshotkit.training"),
                                           ("episodes", "fewshotkit.training"), ("store", "fewshotkit.evaluation"),
                                           ("store", "fewshotkit.segment"), ("store", "fewshotkit.cli"),
                                           ("training", "fewshotkit.segment"), ("evaluation", "fewshotkit.segment")])
def test_lower_layers_do_not_import_higher_ones(lower: str, higher: str):
    offenders = [f"{path.relative_to(PACKAGE)} imports {name}" for path in sorted((PACKAGE / lower).rglob("*.py"))
                 for name in imported_modules(path) if name == higher or name.startswith(higher + ".")]
    assert not offenders, offenders


def test_the_core_never_imports_a_builtin_plugin():
    offenders = [f"{path.relative_to(PACKAGE)} imports {name}" for path in sorted(PACKAGE.rglob("*.py"))
                 for name in imported_modules(path) if name.split(".")[0] in PLUGINS]
    assert not offenders, offenders
