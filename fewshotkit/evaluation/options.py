"""Inference options: everything that changes how a trained model segments, as one value.

:class:`InferenceOptions` is built once (from the command line by one shared click decorator,
from the Python API's keywords, from a bench config) and handed as one value to ``segment``,
``eval``, ``bench`` and the API. Its constructor is the one place the options are checked, so
``--shots 0`` on the command line and ``shots=0`` in a notebook give the same one-line error.

Fields that a method spec also holds (``postprocess``, ``drop_absent``, ``support_orientation``,
``support_zoom``, ``test_mirror``, ``fg_threshold``) are ``None`` for "the model's own";
:meth:`InferenceOptions.for_spec` fills them from a loaded model's spec. ``--set KEY=VALUE`` for
one of these keys is an alias of the field (:meth:`InferenceOptions.from_values` moves it there);
``--set KEY=null`` stays an override that resets the model's own value. The options are listed,
with their spellings, in ``docs/inference-options.md``.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.postprocess import ScanPostprocess, build_postprocess
from fewshotkit.evaluation.query_range import CHUNK_RULES

#: spec keys whose ``--set KEY=VALUE`` is an alias of the field of the same name
SPEC_FIELDS = ("postprocess", "drop_absent", "support_orientation", "support_zoom", "test_mirror", "fg_threshold")
#: protocol keys whose ``--set KEY=VALUE`` is an alias of the field (a reading of bench can compare them)
PROTOCOL_FIELDS = ("chunk_rule",)
#: spec keys passed to the model as overrides when set (the others act after the model)
MODEL_KEYS = ("support_orientation", "support_zoom", "test_mirror", "fg_threshold")
#: field -> how the command line spells it (for messages)
_FLAGS = {"shots": "--shots", "chunks": "--chunks", "batch_size": "--batch-size", "query_range": "--query-range",
          "drop_absent": "--drop-absent", "postprocess": "--postprocess", "chunk_rule": "--chunk-rule"}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_count(name: str, value: Any) -> None:
    if not _is_int(value) or int(value) < 1:
        raise FewshotkitError(f"{name} ({_FLAGS[name]}) must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class InferenceOptions:
    """How a trained model segments a query; see the module docstring and ``docs/inference-options.md``.

    ``shots``: support slices per chunk (k-shot); ``chunks``: C, chunks per query volume;
    ``batch_size``: query slices per forward pass; ``query_range``: (first, last) query slice to
    segment, None to estimate it from the support (``segment`` and the API); ``all_slices``: segment
    every query slice; ``joint``: one N-way pass per chunk for several classes when the method
    allows; ``postprocess``: post-processor tables (names are accepted: ``"a,b"``, ``["a"]``,
    ``"none"``), or a built :class:`ScanPostprocess`; ``overrides``: other ``KEY=VALUE`` inference
    options of the trained method (``pooler.test_window=1``); ``chunk_rule``: how a query's range
    is cut into the chunks (``even``, ``ssl-alpnet``, ``qnet``: :mod:`fewshotkit.evaluation.query_range`).
    """

    shots: int = 1
    chunks: int = 3
    batch_size: int = 16
    query_range: tuple[int, int] | None = None
    all_slices: bool = False
    joint: bool = True
    postprocess: tuple[dict[str, Any], ...] | ScanPostprocess | None = None
    drop_absent: float | None = None
    support_orientation: str | None = None
    support_zoom: float | None = None
    test_mirror: bool | None = None
    fg_threshold: float | None = None
    overrides: tuple[str, ...] = ()
    chunk_rule: str = "even"

    def __post_init__(self) -> None:
        for name in ("shots", "chunks", "batch_size"):
            _check_count(name, getattr(self, name))
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.chunk_rule not in CHUNK_RULES:
            raise FewshotkitError(f"chunk_rule (--chunk-rule) must be one of {', '.join(CHUNK_RULES)}, "
                                  f"got {self.chunk_rule!r}")
        for name in ("all_slices", "joint"):
            if not isinstance(getattr(self, name), bool):
                raise FewshotkitError(f"{name} must be true or false, got {getattr(self, name)!r}")
        object.__setattr__(self, "query_range", _checked_range(self.query_range))
        if self.postprocess is not None and not isinstance(self.postprocess, ScanPostprocess):
            from fewshotkit.method.spec import parse_postprocess

            tables = parse_postprocess(list(self.postprocess) if isinstance(self.postprocess, tuple)
                                       else self.postprocess, source="postprocess (--postprocess)")
            object.__setattr__(self, "postprocess", tuple(tables))
        _check_spec_fields(self)
        if isinstance(self.overrides, str) or not all(isinstance(o, str) for o in self.overrides):
            raise FewshotkitError(f"overrides (--set) must be a list of KEY=VALUE strings, got {self.overrides!r}")
        object.__setattr__(self, "overrides", tuple(self.overrides))
        for item in self.overrides:
            if "=" not in item:
                raise FewshotkitError(f"--set '{item}': expected KEY=VALUE, e.g. pooler.test_window=1")

    @classmethod
    def from_values(cls, overrides: Sequence[str] = (), **values: Any) -> "InferenceOptions":
        """Options from loose values as the command line, the API or a bench config give them.

        ``overrides`` (``--set``) items for :data:`SPEC_FIELDS` and :data:`PROTOCOL_FIELDS` become those
        fields (aliases; a later one wins, and the field given as itself, ``--drop-absent``, wins over
        its alias). An unknown keyword is a one-line error; ``chunk_rule=None`` is not given.
        """
        from fewshotkit.core.userinput import parse_assignment

        _check_names(values)
        if isinstance(overrides, str):
            overrides = [overrides]
        aliased: dict[str, Any] = {}
        kept: list[str] = []
        for item in overrides:
            key, value = parse_assignment(item, "pooler.test_window=1")
            if (key in SPEC_FIELDS and (value is not None or key == "postprocess")) or key in PROTOCOL_FIELDS:
                aliased[key] = "none" if value is None else value
                kept = [k for k in kept if k.partition("=")[0].strip() != key]
            else:
                aliased.pop(key, None)
                kept.append(item)
        for key, value in aliased.items():
            if values.get(key) is None:  # the option itself wins over its --set alias
                values[key] = value
        if values.get("chunk_rule", "") is None:  # not given: the field's default
            del values["chunk_rule"]
        return cls(overrides=tuple(kept), **values)

    def replace(self, **changes: Any) -> "InferenceOptions":
        """A copy with ``changes`` (checked like the constructor)."""
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def method_overrides(self) -> list[str]:
        """The ``KEY=VALUE`` overrides to load the trained method with: :attr:`overrides`, then the
        set spec fields that act inside the model (orientation, zoom, mirror, threshold)."""
        set_fields = [(key, getattr(self, key)) for key in MODEL_KEYS if getattr(self, key) is not None]
        return [*self.overrides, *(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in set_fields)]

    def for_spec(self, spec: Any) -> "InferenceOptions":
        """These options with the spec fields left at None taken from ``spec`` (a loaded model's) and
        the post-processing built (:class:`ScanPostprocess`: the spec's list unless replaced)."""
        cleanup = self.cleanup(spec)
        filled = {key: getattr(spec, key) for key in MODEL_KEYS if getattr(self, key) is None}
        return dataclasses.replace(self, postprocess=cleanup, drop_absent=cleanup.drop_absent, **filled)

    def cleanup(self, spec: Any = None) -> ScanPostprocess:
        """The post-processing: a built one as given, else these tables (None: ``spec``'s list) and
        ``drop_absent`` (None: ``spec``'s)."""
        if isinstance(self.postprocess, ScanPostprocess):
            return self.postprocess
        tables = self.postprocess if self.postprocess is not None else getattr(spec, "postprocess", [])
        absent = self.drop_absent if self.drop_absent is not None else getattr(spec, "drop_absent", None)
        return build_postprocess(list(tables), absent) if tables else ScanPostprocess([], [], absent)

    def tables(self) -> list[dict[str, Any]] | None:
        """The post-processor tables these options give (None: the model's own)."""
        if isinstance(self.postprocess, ScanPostprocess):
            return [dict(t) for t in self.postprocess.tables]
        return None if self.postprocess is None else [dict(t) for t in self.postprocess]

    @property
    def orientation(self) -> str:
        """The support orientation to segment with ("as-is" when neither the options nor a spec set it)."""
        return self.support_orientation or "as-is"


def _check_names(values: dict[str, Any]) -> None:
    """A one-line error for a keyword that is no inference option."""
    from fewshotkit.core.userinput import did_you_mean

    known = [f.name for f in dataclasses.fields(InferenceOptions)]
    for key in values:
        if key not in known:
            raise FewshotkitError(f"unknown inference option '{key}'.{did_you_mean(key, known)} "
                                  f"Options: {', '.join(known)}")


def _checked_range(query_range: Any) -> tuple[int, int] | None:
    """``query_range`` as (first, last) ints, or a one-line error."""
    if query_range is None:
        return None
    try:
        lo, hi = query_range
    except (TypeError, ValueError):
        raise FewshotkitError(f"query_range (--query-range) must be two slice numbers (first, last), "
                              f"got {query_range!r}") from None
    if not (_is_int(lo) and _is_int(hi)) or int(lo) < 0:
        raise FewshotkitError(f"query_range (--query-range) must be two whole slice numbers >= 0, got {query_range!r}")
    if int(lo) > int(hi):
        raise FewshotkitError(f"--query-range '{int(lo)}:{int(hi)}' (query_range): the first slice {int(lo)} is after "
                              f"the last {int(hi)}; use Z0:Z1 with Z0 <= Z1 (e.g. {int(hi)}:{int(lo)})")
    return int(lo), int(hi)


def _check_spec_fields(options: InferenceOptions) -> None:
    """The spec fields, checked as a method spec checks them (one message per bad value)."""
    from fewshotkit.method.spec import MethodSpec

    for key in ("drop_absent", *MODEL_KEYS):
        value = getattr(options, key)
        if value is None:
            continue
        try:
            MethodSpec.from_dict({"method": "-", key: value})
        except FewshotkitError as exc:
            flag = _FLAGS.get(key, f"--set {key}=...")
            raise FewshotkitError(f"{key} ({flag}): {str(exc).removeprefix('method spec: ')}") from None
