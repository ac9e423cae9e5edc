"""One shared rich console and the progress bar every long task uses."""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A table on stdout that never cuts a cell: a rich table whose cells wrap whole on a terminal,
    else (piped, redirected) one line per row, cells separated by tabs, so ``| grep NAME`` finds it."""
    from rich.table import Table

    cells = [[str(cell) for cell in row] for row in rows]
    if not console.is_terminal:
        lines = ([title] if title else []) + ["\t".join(columns)] + ["\t".join(row) for row in cells]
        console.file.write("\n".join(lines) + "\n")
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table)


def make_progress(*extra_columns, transient: bool = False) -> Progress:
    """A progress bar on stderr; it draws nothing when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=not err_console.is_terminal,
        refresh_per_second=4,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (quiet when not on a terminal)."""
    with make_progress() as progress:
        yield from progress.track(items, total=total, description=description)
