"""``--set KEY=VALUE`` overrides of a method spec, for training and for a model already trained.

:func:`apply_overrides` edits any key (parts, options, training, the top-level inference keys,
post-processing); :func:`apply_inference_overrides` refuses ``training.*``, which cannot change a
trained model. Names are checked later, by :func:`fewshotkit.method.build.validate_spec`.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.method.spec import (INFERENCE_KEYS, INFERENCE_OPTIONS, PART_KINDS, MethodSpec, float_groups,
                                     parse_postprocess)


def apply_overrides(spec: MethodSpec, assignments: Sequence[str]) -> MethodSpec:
    """A copy of ``spec`` with ``section.key=value`` assignments applied.

    Sections: the parts (``backbone``, ``pooler``, ``classifier``), ``options`` and ``training``
    (``training.a.b=1`` sets nested tables); top-level keys ``method``, ``image_size``,
    ``support_orientation``, ``support_zoom``, ``test_mirror``, ``fg_threshold``, ``drop_absent`` and ``postprocess``
    (replaces the list: ``postprocess=largest-component,z-continuity``, a TOML list of names or tables, or ``none``).
    Values are TOML literals, else strings; ``null`` removes the key (back to the factory's default).
    Option names are checked by :func:`validate_spec`.
    """
    from fewshotkit.core.userinput import parse_assignment

    spec = copy.deepcopy(spec)
    # a new part type first resets that part's options, so "pooler.type=masked-avg" drops ALP's
    type_first = sorted(assignments, key=lambda a: a.partition("=")[0].strip().rpartition(".")[2] != "type")
    retyped: dict[str, dict[str, Any]] = {}  # part kind -> its options before the type changed
    for item in type_first:
        key, value = parse_assignment(item, "pooler.train_window=4")
        if key == "postprocess":
            spec.postprocess = parse_postprocess([] if value is None else value, source=f"--set '{item}'")
            continue
        if key in ("method", "image_size", *INFERENCE_KEYS):
            data = spec.to_dict()
            data[key] = value
            spec = MethodSpec.from_dict(data)
            continue
        section, name = _section_key(item, key)
        if section in PART_KINDS:
            if "." in name:
                raise FewshotkitError(f"--set '{item}': part options are flat ({section}.KEY=VALUE)")
            if name == "type" and value is None:
                raise FewshotkitError(f"--set '{item}': a part needs a type (e.g. {section}.type=NAME)")
            if name == "type" and spec.parts.get(section, {}).get("type") != value:
                retyped[section] = spec.parts.pop(section, {})
            _assign(spec.parts.setdefault(section, {}), name, value)
        elif section == "options":
            if "." in name:
                raise FewshotkitError(f"--set '{item}': method options are flat (options.KEY=VALUE)")
            _assign(spec.options, name, value)
        else:
            _assign_nested(spec.training, item, name, value)
    float_groups(spec.training)
    _keep_shared_options(spec, retyped)
    return spec


def _section_key(item: str, key: str) -> tuple[str, str]:
    """``SECTION.KEY`` of the assignment ``item`` split in two, the section checked."""
    from fewshotkit.core.userinput import did_you_mean

    sections = (*PART_KINDS, "options", "training")
    section, dot, name = key.partition(".")
    if not dot or not name:
        raise FewshotkitError(
            f"--set '{item}': '{key}' is not SECTION.KEY; sections: {', '.join(sections)} "
            f"(or {', '.join(k + '=...' for k in ('method', 'image_size', *INFERENCE_KEYS, 'postprocess'))})"
        )
    if section not in sections:
        raise FewshotkitError(
            f"--set '{item}': unknown section '{section}'.{did_you_mean(section, sections)} "
            f"Sections: {', '.join(sections)}"
        )
    return section, name


def _assign_nested(table: dict[str, Any], item: str, name: str, value: Any) -> None:
    """Set the dotted ``name`` (``groups.threshold.lr_scale``) in the training table, making tables on the way."""
    *path, last = name.split(".")
    for part in path:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise FewshotkitError(f"--set '{item}': training.{part} is not a table")
    _assign(table, last, value)


def _keep_shared_options(spec: MethodSpec, retyped: dict[str, dict[str, Any]]) -> None:
    """A part given a new type keeps the options of its old type that the new one also takes (out_channels)."""
    if not retyped:
        return
    from fewshotkit.host.plugin_host import get_registry

    for kind, old in retyped.items():
        valid = get_registry().get(kind, spec.parts[kind]["type"]).options()
        for key, value in old.items():
            if key != "type" and key in valid:
                spec.parts[kind].setdefault(key, value)


def _assign(table: dict[str, Any], key: str, value: Any) -> None:
    """``table[key] = value``; ``None`` (``--set key=null``) removes the key instead."""
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value


def apply_inference_overrides(spec: MethodSpec, assignments: Sequence[str]) -> MethodSpec:
    """:func:`apply_overrides` for a model already trained: ``training.*`` keys are refused (they
    cannot change a trained model); keys that change the weights' shapes fail when the weights load."""
    for item in assignments:
        if item.strip().startswith("training."):
            raise FewshotkitError(f"--set '{item}': training options do not apply to a trained model; "
                                  "set inference options (pooler.*, classifier.*, "
                                  f"{', '.join('options.' + k for k in INFERENCE_OPTIONS)}, image_size, "
                                  f"{', '.join(INFERENCE_KEYS)}, postprocess)")
    return apply_overrides(spec, assignments) if assignments else spec
