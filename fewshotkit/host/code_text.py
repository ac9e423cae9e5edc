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

    Positions come from :mod:`ast` (docstrings) and :mod:`tokenize` (comments, string tokens), which
    agree across Python versions, unlike a dump of the tree. Source that does not parse is returned whole.
    """
    try:
        text = source.decode(tokenize.detect_encoding(io.BytesIO(source).readline)[0]).removeprefix("\ufeff")
        tree = ast.parse(text)
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (UnicodeDecodeError, LookupError, SyntaxError, ValueError, tokenize.TokenError):
        return source.decode("latin-1")
    lines = io.StringIO(text, newline="").readlines()  # the line breaks ast and tokenize count
    starts = list(itertools.accumulate((len(line) for line in lines), initial=0))

    def offset(row: int, byte_col: int) -> int:  # ast's columns count UTF-8 bytes
        return starts[row - 1] + len(lines[row - 1].encode("utf-8")[:byte_col].decode("utf-8"))

    spans = [(starts[t.start[0] - 1] + t.start[1], starts[t.end[0] - 1] + t.end[1])
             for t in tokens if t.type == tokenize.COMMENT]
    docs = docstrings(tree)
    spans += [(offset(d.lineno, d.col_offset), offset(d.end_lineno or d.lineno, d.end_col_offset or 0)) for d in docs]
    removed = bytearray(len(text))
    for start, stop in spans:
        removed[start:stop] = b"\1" * (stop - start)
    kept = "".join(c for c, gone in zip(text, removed) if not gone or c in "\r\n")
    literal = literal_lines(tokens, [(d.lineno, d.end_lineno or d.lineno) for d in docs])
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


def literal_lines(tokens: list[tokenize.TokenInfo], docstring_rows: list[tuple[int, int]]) -> set[int]:
    """The rows (1-based) at which a string token, other than a docstring's, continues onto the next
    row: their ends, blank or not, are the literal's text. An f-string is one token before Python
    3.12 and a start, middle and end token since."""
    start_type, end_type = getattr(tokenize, "FSTRING_START", None), getattr(tokenize, "FSTRING_END", None)
    rows: set[int] = set()
    opened: list[int] = []
    for token in tokens:
        if token.type == start_type:
            opened.append(token.start[0])
            continue
        if token.type == end_type and opened:
            first = opened.pop()
        elif token.type == tokenize.STRING:
            first = token.start[0]
        else:
            continue
        last = token.end[0]
        if not any(top <= first and last <= bottom for top, bottom in docstring_rows):
            rows.update(range(first, last))
    return rows
