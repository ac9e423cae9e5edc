"""Functions stay short enough to read at once: at most 60 lines in the training loop, the training
layer and the core, at most 80 anywhere in the package. A line count is the function's ``def`` line
to its last line (docstring and comments included, decorators not)."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "fewshotkit"


def function_lengths(folder: Path) -> dict[str, int]:
    """``"path:line name"`` -> lines, for every function and method under ``folder`` (or that file)."""
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.py"))
    lengths = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                name = path.relative_to(PACKAGE.parent).as_posix() if path.is_relative_to(PACKAGE.parent) else path.name
                where = f"{name}:{node.lineno} {node.name}"
                lengths[where] = node.end_lineno - node.lineno + 1
    return lengths


def longer_than(limit: int, *folders: Path) -> dict[str, int]:
    return {where: n for folder in folders for where, n in function_lengths(folder).items() if n > limit}


def test_the_count_sees_nested_functions_and_methods(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("class A:\n    def f(self):\n        def g():\n            return 1\n        return g()\n")
    lengths = {where.rsplit(" ", 1)[1]: n for where, n in function_lengths(source).items()}
    assert lengths == {"f": 4, "g": 2}


def test_the_training_loop_functions_are_at_most_60_lines():
    assert longer_than(60, PACKAGE / "training" / "loop.py") == {}


def test_the_training_layer_and_the_core_have_no_function_over_60_lines():
    assert longer_than(60, PACKAGE / "training", PACKAGE / "core") == {}


def test_no_function_in_the_package_is_over_80_lines():
    assert longer_than(80, PACKAGE) == {}
