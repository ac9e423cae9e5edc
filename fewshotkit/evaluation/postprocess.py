"""What happens to one class's prediction for a whole query scan after the model.

Two optional steps, in this order, the same in ``eval``, ``bench``, ``segment`` and the Python API:

1. **Slice presence** (``drop_absent``, the spec's key or an override; off by default): a slice
   is judged to hold no organ when the probability mass of its predicted foreground (the sum of
   the foreground probability over the slice's predicted pixels) is below ``drop_absent`` x the
   largest slice mass of the scan; its prediction is cleared. Only predicted pixels count, so the
   faint background probability spread over a whole slice does not hide an empty one.
2. **Post-processors** from the method spec's ``[postprocess]`` list (or an override), built
   through the ``postprocessor`` registry and applied in order, each seeing the scan's voxel
   spacing (z, y, x) in mm when it is known; one that sets ``uses_support`` also sees the support
   scan's mask of the class.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from fewshotkit.core.errors import FewshotkitError

#: ``postprocessor(mask (Z, H, W) bool, spacing (z, y, x) mm or None) -> mask (Z, H, W) bool``
PostprocessorFn = Callable[[np.ndarray, "tuple[float, float, float] | None"], np.ndarray]


def slice_mass(mask: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Probability mass (Z,) float64 of the predicted foreground: probabilities (Z, H, W) in [0, 1]
    summed over the pixels of ``mask`` (Z, H, W)."""
    return np.where(mask, probabilities, 0.0).sum(axis=(1, 2), dtype=np.float64)


def drop_absent_slices(mask: np.ndarray, probabilities: np.ndarray, fraction: float) -> np.ndarray:
    """``mask`` (Z, H, W) with the slices whose mass is below ``fraction`` x the scan's largest cleared."""
    mass = slice_mass(mask, probabilities)
    present = mass >= fraction * mass.max() if mass.size and mass.max() > 0 else np.zeros(mass.shape, bool)
    return np.asarray(mask, dtype=bool) & present[:, None, None]


def check_drop_absent(fraction: float | None) -> None:
    """A one-line error unless ``fraction`` is None (off) or a number in (0, 1]."""
    if fraction is None:
        return
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < float(fraction) <= 1.0:
        raise FewshotkitError(f"drop_absent (--drop-absent) must be a fraction in (0, 1] of the scan's largest slice "
                              f"mass, got {fraction!r}; give e.g. 0.1, or null to turn it off")


@dataclass
class ScanPostprocess:
    """Slice presence then post-processors for one class of one query scan (see the module docstring).

    ``steps``: (name, post-processor) pairs; ``tables``: the spec tables they were built from.
    """

    steps: list[tuple[str, PostprocessorFn]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    drop_absent: float | None = None

    def __post_init__(self) -> None:
        check_drop_absent(self.drop_absent)

    @property
    def needs_probabilities(self) -> bool:
        return self.drop_absent is not None

    def __bool__(self) -> bool:
        return bool(self.steps) or self.drop_absent is not None

    def __call__(self, mask: np.ndarray, probabilities: np.ndarray | None = None,
                 spacing: Sequence[float] | None = None, support: np.ndarray | None = None) -> np.ndarray:
        """``mask`` (Z, H, W) bool (+ foreground probabilities (Z, H, W), the support scan's mask
        of the class (Zs, Hs, Ws) bool) -> cleaned (Z, H, W) bool."""
        out = np.asarray(mask, dtype=bool)
        if self.drop_absent is not None:
            if probabilities is None:
                raise FewshotkitError("drop_absent needs foreground probabilities, which this predictor does not give; "
                                      "turn it off (--set drop_absent=null)")
            out = drop_absent_slices(out, probabilities, float(self.drop_absent))
        space = None if spacing is None else (float(spacing[0]), float(spacing[1]), float(spacing[2]))
        for name, step in self.steps:
            if getattr(step, "uses_support", False):
                if support is None:
                    raise FewshotkitError(f"post-processor '{name}' needs the support's mask, which this caller "
                                          "does not give")
                aware: Any = step  # a SupportPostprocessor: also takes the support's mask
                result = np.asarray(aware(out, space, support=np.asarray(support, dtype=bool)))
            else:
                result = np.asarray(step(out, space))
            if result.shape != out.shape:
                raise FewshotkitError(f"post-processor '{name}' returned shape {result.shape}, expected {out.shape}")
            out = result.astype(bool, copy=False)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"postprocess": [dict(t) for t in self.tables], "drop_absent": self.drop_absent}


def build_postprocess(tables: Sequence[dict[str, Any]] | str | None = None,
                      drop_absent: float | None = None) -> ScanPostprocess:
    """Build the post-processors of ``tables`` (spec ``[postprocess]`` entries, names or "a,b")."""
    from fewshotkit.host.plugin_host import get_registry
    from fewshotkit.method.spec import parse_postprocess

    parsed = parse_postprocess(tables if tables is not None else [])
    registry = get_registry()
    steps = []
    for table in parsed:
        options = {k: v for k, v in table.items() if k != "type"}
        component = registry.get("postprocessor", table["type"])
        component.check_options(options, prefix="postprocess.")
        steps.append((table["type"], component.create(**options)))
    return ScanPostprocess(steps, parsed, drop_absent)


def spec_postprocess(spec: Any, postprocess: Sequence[Any] | str | None = None,
                     drop_absent: float | None = None) -> ScanPostprocess:
    """The clean-up a method spec asks for: its ``[postprocess]`` list and ``drop_absent``, each
    replaced by the argument when that is given (``postprocess="none"`` or ``[]``: no post-processors)."""
    return build_postprocess(spec.postprocess if postprocess is None else postprocess,
                             spec.drop_absent if drop_absent is None else drop_absent)
