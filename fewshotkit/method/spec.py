"""Method specs: a flat, plain-data description of a method (TOML) and its presets.

A spec file looks like::

    method = "alpnet"
    preset = "ssl-alpnet"
    image_size = 256

    [options]            # keyword options of the method factory
    bg_weight = 0.05

    [backbone]           # one table per part: its registered type + the factory's options
    type = "deeplab-resnet101"

    [pooler]
    type = "alp"

    [classifier]
    type = "cosine-softmax"

    [training]           # opaque here; validated by the training code
    regime = "ssl"

    [[postprocess]]      # optional: post-processors applied in order to each query scan
    type = "largest-component"

No torch import happens at module level: building a method imports the parts lazily. The
``--set KEY=VALUE`` overrides live in :mod:`fewshotkit.method.overrides`; checking a spec against the
registry and building it, in :mod:`fewshotkit.method.build`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.method.presets import PAPER_STEPS, PRESETS

__all__ = ["PAPER_STEPS", "PRESETS", "MethodSpec", "preset_spec", "dump_spec",
           "save_spec"]


PART_KINDS: tuple[str, ...] = ("backbone", "pooler", "classifier")
_TOP_LEVEL = ("method", "preset", "image_size", "support_orientation", "support_zoom", "test_mirror", "fg_threshold",
              "drop_absent", "options", "training", *PART_KINDS, "postprocess")
#: inference: the support as it is, or turned per query scan as the model finds most consistent
#: (:mod:`fewshotkit.evaluation.orientation`)
SUPPORT_ORIENTATIONS = ("as-is", "search")
#: top-level keys that change how a trained model predicts, not the model (``--set`` / ``--eval-set``)
INFERENCE_KEYS = ("support_orientation", "support_zoom", "test_mirror", "fg_threshold", "drop_absent")
#: method options (``options.*``) that act at inference only, so a trained model takes them too
INFERENCE_OPTIONS = ("self_support",)


def check_orientation(value: Any, prefix: str = "") -> str:
    """``value`` if it names a support orientation, else a one-line error (``prefix`` names the source)."""
    if value not in SUPPORT_ORIENTATIONS:
        raise FewshotkitError(f"{prefix}'support_orientation' must be one of {', '.join(SUPPORT_ORIENTATIONS)}, "
                              f"got {value!r}")
    return str(value)


@dataclass
class MethodSpec:
    """What to build: a registered method, its parts (for composed methods) and options."""

    method: str
    parts: dict[str, dict[str, Any]]
    options: dict[str, Any]
    image_size: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    postprocess: list[dict[str, Any]] = field(default_factory=list)  # [{"type": NAME, **options}]
    support_orientation: str = "as-is"
    support_zoom: float | None = None  # margin of the support's window (evaluation/zoom.py); None: no zoom
    test_mirror: bool = False  # average each prediction with that of the left-right mirrored episode
    fg_threshold: float = 0.5  # foreground where its 1-way softmax exceeds this (evaluation/inference.py)
    drop_absent: float | None = None  # slice presence before post-processing (evaluation/postprocess.py); None: off

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the TOML layout: parts as top-level tables); ``None`` values are left out."""
        out: dict[str, Any] = {"method": self.method}
        if self.preset is not None:
            out["preset"] = self.preset
        if self.image_size is not None:
            out["image_size"] = self.image_size
        if self.support_orientation != "as-is":  # left out by default: older specs' cache keys stay
            out["support_orientation"] = self.support_orientation
        if self.support_zoom is not None:
            out["support_zoom"] = self.support_zoom
        if self.test_mirror:  # left out when off, as support_orientation
            out["test_mirror"] = True
        if self.fg_threshold != 0.5:  # left out at the default, as test_mirror
            out["fg_threshold"] = self.fg_threshold
        if self.drop_absent is not None:
            out["drop_absent"] = self.drop_absent
        out["options"] = _drop_none(self.options)
        for kind in PART_KINDS:
            if kind in self.parts:
                out[kind] = _drop_none(self.parts[kind])
        out["training"] = _drop_none(self.training)
        if self.postprocess:
            out["postprocess"] = [_drop_none(table) for table in self.postprocess]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MethodSpec":
        """Inverse of :meth:`to_dict`; unknown top-level keys or wrong types raise FewshotkitError."""
        if not isinstance(d, dict):
            raise FewshotkitError("a method spec must be a table (mapping)")
        unknown = [k for k in d if k not in _TOP_LEVEL]
        if unknown:
            raise FewshotkitError(
                f"unknown key '{unknown[0]}' in method spec; valid keys: {', '.join(_TOP_LEVEL)}"
            )
        method = d.get("method")
        if not isinstance(method, str) or not method:
            raise FewshotkitError("method spec: 'method' (the registered method name) is required")
        for key in ("options", "training", *PART_KINDS):
            if key in d and not isinstance(d[key], dict):
                raise FewshotkitError(f"method spec: '{key}' must be a table, got {type(d[key]).__name__}")
        image_size = d.get("image_size")
        if image_size is not None and (not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 16):
            raise FewshotkitError(f"method spec: 'image_size' must be an integer >= 16, got {image_size!r}")
        preset = d.get("preset")
        if preset is not None and not isinstance(preset, str):
            raise FewshotkitError(f"method spec: 'preset' must be a string, got {preset!r}")
        orientation = check_orientation(d.get("support_orientation", "as-is"), "method spec: ")
        zoom = d.get("support_zoom")
        if zoom is not None and (isinstance(zoom, bool) or not isinstance(zoom, (int, float)) or not 0 <= zoom <= 1):
            raise FewshotkitError(f"method spec: 'support_zoom' must be a margin in [0, 1] (a fraction of the slice, "
                                  f"e.g. 0.1), or null for no zoom; got {zoom!r}")
        mirror = False if d.get("test_mirror") is None else d["test_mirror"]  # null: back to the default
        if not isinstance(mirror, bool):
            raise FewshotkitError(f"method spec: 'test_mirror' must be true or false, got {mirror!r}")
        threshold = 0.5 if d.get("fg_threshold") is None else d["fg_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise FewshotkitError(f"method spec: 'fg_threshold' must be a probability in (0, 1) (0.5: the argmax), "
                                  f"got {threshold!r}")
        absent = d.get("drop_absent")
        if absent is not None and (isinstance(absent, bool) or not isinstance(absent, (int, float))
                                   or not 0 < absent <= 1):
            raise FewshotkitError(f"method spec: 'drop_absent' must be a fraction in (0, 1] of the scan's largest "
                                  f"slice mass, or null for off; got {absent!r}")
        return cls(
            method=method,
            parts={k: dict(d[k]) for k in PART_KINDS if k in d},
            options=dict(d.get("options", {})),
            image_size=image_size,
            training=float_groups(copy.deepcopy(d.get("training", {}))),
            preset=preset,
            postprocess=parse_postprocess(d.get("postprocess", [])),
            support_orientation=orientation,
            support_zoom=None if zoom is None else float(zoom),
            test_mirror=mirror,
            fg_threshold=float(threshold),
            drop_absent=None if absent is None else float(absent),
        )


def float_groups(training: dict[str, Any]) -> dict[str, Any]:
    """``training`` with every number of its ``groups`` tables as a float (a group's settings are
    floats, so ``lr_scale = 10`` keys the runs and bench cells that ``lr_scale = 10.0`` made); in place."""
    for settings in (training.get("groups") or {}).values():
        if isinstance(settings, dict):
            for key, value in settings.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    settings[key] = float(value)
    return training


def parse_postprocess(value: Any, source: str = "postprocess") -> list[dict[str, Any]]:
    """Post-processor tables from a spec value or an override.

    Accepts a list of tables (``[{type = "min-size", min_size = 500}]``) or names, one name, or
    comma-separated names (``"largest-component,z-continuity"``); ``"none"`` or ``""`` is no
    post-processing. Names and options are checked by :func:`validate_spec`.
    """
    if isinstance(value, str):
        value = [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise FewshotkitError(f"{source}: expected a list of post-processors, got {type(value).__name__}")
    tables = []
    for item in value:
        table = {"type": item} if isinstance(item, str) else item
        if not isinstance(table, dict) or not isinstance(table.get("type"), str) or not table["type"]:
            raise FewshotkitError(
                f"{source}: each entry is a name or a table with type = \"NAME\" (see `fewshotkit components "
                f"postprocessor`), got {item!r}"
            )
        tables.append(dict(table))
    return tables


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


# -- presets (the tables live in fewshotkit.method.presets) ---------------------------------------------
def preset_spec(name: str) -> MethodSpec:
    """The built-in preset ``name``; unknown names raise with close matches and the list."""
    from fewshotkit.core.userinput import look_up

    look_up(name, PRESETS, "preset")
    spec = MethodSpec.from_dict(copy.deepcopy(PRESETS[name]))
    spec.preset = name
    return spec


# -- files --------------------------------------------------------------------------------------
def dump_spec(spec: MethodSpec) -> str:
    """The spec as TOML text."""
    import tomli_w

    return tomli_w.dumps(spec.to_dict())


def save_spec(spec: MethodSpec, path: str | Path) -> None:
    """Write ``spec`` as TOML atomically (temporary file in the same directory, then rename)."""
    from fewshotkit.core.atomic import write_text

    write_text(path, dump_spec(spec))
