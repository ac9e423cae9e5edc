"""Pseudolabel set names: short, and the same for the same parameters however they were typed.

A set is named ``<pseudolabeler>-<8 hex digits>``, the digits hashing the pseudolabeler's
parameters in canonical form: numbers compare as floats (``scale=1`` and the default ``1.0``
are one set), tuples as lists, keys sorted. Whether a set already exists is decided by its
recorded component and parameters, not by its name, so sets written with older, longer names
are found too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fewshotkit.data.store import format as fmt


def canonical_params(value: Any) -> Any:
    """``value`` with every number as a float, tuples as lists and other objects as text."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): canonical_params(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical_params(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return canonical_params(value.item())
    return str(value)


def set_name(component: str, params: dict[str, Any]) -> str:
    """``felzenszwalb-1f0c9a7e``: the component and a hash of its canonical parameters."""
    text = json.dumps(canonical_params(params), sort_keys=True, allow_nan=True)
    return f"{component}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def find_set(sets_group: Any, component: str, params: dict[str, Any]) -> str | None:
    """The name of the set in ``sets_group`` (the store's ``/pseudolabels`` group) that
    ``component`` made with ``params``, or None."""
    wanted = canonical_params(params)
    for name in sorted(sets_group.keys()):
        attrs = sets_group[name].attrs
        if attrs.get(fmt.SET_COMPONENT) != component:
            continue
        try:
            recorded = json.loads(attrs.get(fmt.SET_PARAMS, "null"))
        except (TypeError, ValueError):
            continue
        if _same_params(canonical_params(recorded), wanted):
            return name
    return None


def _same_params(a: Any, b: Any) -> bool:
    """Equal canonical parameters; as text too, so that a NaN equals the NaN it was recorded as."""
    return bool(a == b) or json.dumps(a, sort_keys=True, allow_nan=True) == json.dumps(b, sort_keys=True, allow_nan=True)


def describe_set(name: str, attrs: dict[str, Any]) -> str:
    """``felzenszwalb-1f0c9a7e (felzenszwalb min_size=300 sigma=1.0 ...)`` for listings."""
    params = attrs.get(fmt.SET_PARAMS) or {}
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError:
            params = {}
    shown = " ".join(f"{k}={v}" for k, v in sorted(params.items())) if isinstance(params, dict) else ""
    component = attrs.get(fmt.SET_COMPONENT, "?")
    return f"{name} ({component}{' ' + shown if shown else ''})"
