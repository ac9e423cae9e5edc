"""Options shared by the ``eval``, ``bench`` and ``segment`` commands."""

from __future__ import annotations

import click

PROTOCOL_CHOICES = ("roy", "estimated-range", "full-volume")  # fewshotkit.evaluation.query_range.PROTOCOLS
POSTPROCESS_OPTION = click.option(
    "--postprocess", "postprocess", multiple=True, metavar="NAME[,NAME]",
    help="Post-processors for each query scan, replacing the spec's [postprocess] list (repeatable; 'none' for "
         "none; see `fewshotkit components postprocessor`).")
DROP_ABSENT_OPTION = click.option(
    "--drop-absent", type=click.FloatRange(min=0, min_open=True, max=1), default=None, metavar="FRACTION",
    help="Slice presence: clear slices whose predicted foreground's probability mass is below FRACTION x "
         "the scan's largest; replaces the spec's drop_absent (as `--set drop_absent=FRACTION`; "
         "`--set drop_absent=null` turns a spec's off). Default: the spec's, off unless set.")


def postprocess_override(values: tuple[str, ...]) -> list[str] | None:
    """``--postprocess`` values -> names (None: keep the spec's list; 'none' -> no post-processing)."""
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip() and n.strip().lower() != "none"]
