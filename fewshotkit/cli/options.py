"""Options shared by the ``eval``, ``bench`` and ``segment`` commands.

:func:`inference_options` puts the same inference options, spelt the same way, on every command
that segments, and hands the command one value: an
:class:`~fewshotkit.evaluation.options.InferenceOptions` (checked where it is built, as for the
Python API), or for ``bench`` the values given (its config file fills in the rest).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import click

PROTOCOL_CHOICES = ("roy", "estimated-range", "full-volume")  # fewshotkit.evaluation.query_range.PROTOCOLS
CHUNK_RULE_CHOICES = ("even", "ssl-alpnet", "qnet")  # fewshotkit.evaluation.query_range.CHUNK_RULES
_CHUNK_RULE_HELP = ("How a query's range is cut into the chunks: even (np.array_split, 11 slices -> 4, 4, 3), "
                    "ssl-alpnet (SSL-ALPNet's test code: 4, 3, 4) or qnet (Q-Net's, RPT's, GMRD's and ADNet's EP1: "
                    "the class slices only, 3, 4, 4).")
_POSTPROCESS_HELP = ("Post-processors for each query scan, replacing the spec's [postprocess] list (repeatable; "
                     "'none' for none; see `fewshotkit components postprocessor`). Alias: --set postprocess=NAMES.")
_DROP_ABSENT_HELP = ("Slice presence: clear slices whose predicted foreground's probability mass is below FRACTION x "
                     "the scan's largest; replaces the spec's drop_absent. Alias: --set drop_absent=FRACTION "
                     "(`--set drop_absent=null` turns a spec's off). Default: the spec's, off unless set.")
#: ``--val-from`` of ``train`` and ``bench`` (fewshotkit.data.episodes.folds.VAL_FROM)
VAL_FROM_CHOICES = ("next-fold", "end")
VAL_FROM_HELP = ("Where --val-scans come from: next-fold (default), the last training patients of the next fold's "
                 "query block, so every fold holds out its own; end, the end of the training list (one pair for "
                 "every fold but the last, as the zoo studies cached with it).")


def postprocess_override(values: tuple[str, ...]) -> list[str] | None:
    """``--postprocess`` values -> names (None: keep the spec's list; 'none' -> no post-processing)."""
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip() and n.strip().lower() != "none"]


def _parse_range(text: str | None) -> tuple[int, int] | None:
    """``--query-range Z0:Z1`` -> (Z0, Z1); the order is checked with the other options."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(lo), int(hi)
    except ValueError:
        from fewshotkit.core.errors import FewshotkitError

        raise FewshotkitError(f"--query-range '{text}': use Z0:Z1 (first and last slice, inclusive)") from None


def _count(flag: str, default: int | None, help_text: str) -> Callable[[Any], Any]:
    shown = f" (default {default})" if default is not None else ""
    return click.option(flag, type=int, default=default, metavar="N", help=f"{help_text}{shown}; at least 1.")


def inference_options(*, scan: bool = False, bench: bool = False) -> Callable[[Callable[..., Any]], Any]:
    """Click options for :class:`~fewshotkit.evaluation.options.InferenceOptions`, passed to the
    command as one ``inference`` argument.

    Every command: ``--shots``, ``--chunks``, ``--chunk-rule``, ``--batch-size``, ``--postprocess``, ``--drop-absent``
    and the method's inference overrides (``--set``; ``--eval-set`` for ``bench``, whose ``--set``
    changes the trained spec). ``scan=True`` (``segment``) adds ``--query-range``, ``--all-slices``
    and ``--joint/--separate``. ``bench=True``: no defaults, ``inference`` is the dict of the values
    given (the bench config holds the rest).
    """
    default = (lambda value: None) if bench else (lambda value: value)
    overrides_flag = "--eval-set" if bench else "--set"
    decorators = [
        _count("--shots", default(1), "Support slices per chunk (k-shot: the k slices nearest each chunk's position)"),
        _count("--chunks", default(3), "C, chunks per query scan, each with its own support slices"),
        click.option("--chunk-rule", type=click.Choice(CHUNK_RULE_CHOICES), default=None,
                     help=_CHUNK_RULE_HELP + " Default: even. Alias: --set chunk_rule=RULE."),
        _count("--batch-size", default(16), "Query slices per forward pass"),
        click.option("--postprocess", multiple=True, metavar="NAME[,NAME]", help=_POSTPROCESS_HELP),
        click.option("--drop-absent", type=float, default=None, metavar="FRACTION", help=_DROP_ABSENT_HELP),
        click.option(overrides_flag, "inference_overrides", multiple=True, metavar="KEY=VALUE",
                     help="Change an inference option of the trained method (repeatable), e.g. pooler.test_window=1, "
                          "image_size=160, support_orientation=search, support_zoom=0.05, fg_threshold=0.6, "
                          "test_mirror=true; options that change the weights are refused."),
    ]
    if scan:
        decorators += [
            click.option("--query-range", default=None, metavar="Z0:Z1",
                         help="Slices of the query holding the structures (default: estimated from the support per "
                              "class)."),
            click.option("--all-slices", is_flag=True, help="Segment every slice of the query, not only the estimated "
                                                            "range."),
            click.option("--joint/--separate", default=True, show_default=True,
                         help="Several classes: one forward pass per query chunk for all (when the method allows), "
                              "or one per class."),
        ]
    names = ["shots", "chunks", "chunk_rule", "batch_size", "postprocess", "drop_absent", "inference_overrides",
             *(["query_range", "all_slices", "joint"] if scan else [])]

    def decorate(command: Callable[..., Any]) -> Any:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from fewshotkit.evaluation.options import InferenceOptions

            values = {name: kwargs.pop(name) for name in names}
            values["overrides"] = values.pop("inference_overrides")
            values["postprocess"] = postprocess_override(values["postprocess"])
            if "query_range" in values:
                values["query_range"] = _parse_range(values["query_range"])
            if bench:
                kwargs["inference"] = {k: v for k, v in values.items() if v not in (None, ())}
            else:
                kwargs["inference"] = InferenceOptions.from_values(**values)
            return command(*args, **kwargs)

        for decorator in reversed(decorators):
            wrapper = decorator(wrapper)
        return wrapper

    return decorate
