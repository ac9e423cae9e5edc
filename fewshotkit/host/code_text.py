"""The code of a Python source, without what does not run: comments, docstrings, trailing spaces
and blank lines. Plugin fingerprints hash it (:func:`fewshotkit.host.provenance.source_hash`), so
a plugin's prose can be corrected without changing the keys of the results cached under it."""

from __future__ import annotations

import ast
import io
import itertools
import tokenize


def code_text(source: bytes) -> str:
    """Python source without its comments, docstrings, trailing spaces and blank lines (lines inside
    other string literals are kept as they are: they are data).

    Positions come from :mod:`ast` (docstrings, literals) and :mod:`tokenize` (comments), which agree
    across Python versions, unlike a dump of the tree. Source that does not parse is returned whole.
    """
    try:
        text = source.decode(tokenize.detect_encoding(io.BytesIO(source).readline)[0]).removeprefix("\ufeff")
        tree = ast.parse(text)
        comments = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    except (UnicodeDecodeError, LookupError, SyntaxError, ValueError, tokenize.TokenError):
        return source.decode("latin-1")
    lines = io.StringIO(text, newline="").readlines()  # the line breaks ast and tokenize count
    starts = list(itertools.accumulate((len(line) for line in lines), initial=0))

    def offset(row: int, byte_col: int) -> int:  # ast's columns count UTF-8 bytes
        return starts[row - 1] + len(lines[row - 1].encode("utf-8")[:byte_col].decode("utf-8"))

    spans = [(starts[t.start[0] - 1] + t.start[1], starts[t.end[0] - 1] + t.end[1]) for t in comments]
    docs = docstrings(tree)
    spans += [(offset(d.lineno, d.col_offset), offset(d.end_lineno or d.lineno, d.end_col_offset or 0)) for d in docs]
    removed = bytearray(len(text))
    for start, stop in spans:
        removed[start:stop] = b"\1" * (stop - start)
    kept = "".join(c for c, gone in zip(text, removed) if not gone or c in "\r\n")
    literal = literal_lines(tree, docs)
    out = []
    for row, line in enumerate(io.StringIO(kept, newline="").readlines(), start=1):
        line = line.rstrip("\r\n")
        if row in literal:
            out.append(line)
        elif line.strip():
            out.append(line.rstrip())
    return "".join(line + "\n" for line in out)


def docstrings(tree: ast.AST) -> list[ast.Expr]:
    """The docstring statements of a module and of its classes and functions."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.append(first)
    return found


def literal_lines(tree: ast.AST, skip: list[ast.Expr]) -> set[int]:
    """The rows (1-based) at which a string or bytes literal other than ``skip``'s continues onto the
    next row: their ends, blank or not, are the literal's text."""
    skipped = {id(d.value) for d in skip}
    parts = {id(c) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for c in ast.walk(node) if c is not node}
    rows: set[int] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or id(node) in parts:
            continue
        if (isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)))) \
                and node.end_lineno is not None and node.end_lineno > node.lineno:
            rows.update(range(node.lineno, node.end_lineno))
    return rows
