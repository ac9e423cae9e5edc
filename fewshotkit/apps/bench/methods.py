"""The methods a bench compares: the built-in presets' row labels, their published Dice, the
recipes that put every method at one budget (``--recipe cpu``) and the spec of a row."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from fewshotkit.method.presets import cpu_form

#: built-in method name (a spec preset) -> row label in the tables
METHOD_LABELS = {
    "ssl-alpnet": "SSL-ALPNet",
    "ssl-panet": "SSL-PANet",
    "alpnet": "ALPNet (annotated)",
    "panet": "PANet (annotated)",
    "senet": "SE-Net-style",
    "alpnet-init": "ALPNet-init",
    "ssl-alpnet-cpu": "SSL-ALPNet (CPU recipe)",
    "ssl-alpnet-cpu-sgd": "SSL-ALPNet (previous SGD CPU recipe)",
    "ssl-alpnet-cpu-bf16": "SSL-ALPNet (CPU recipe, bfloat16, 3000 steps)",
    "ssl-adnet": "ADNet",
    "ssl-adnet-cpu": "ADNet (CPU recipe)",
    "ssl-qnet": "Q-Net",
    "ssl-qnet-cpu": "Q-Net (CPU recipe)",
    "ssl-qnet-single": "Q-Net (single scale)",
    "ssl-qnet-single-cpu": "Q-Net (single scale, CPU recipe)",
    "ssl-regional": "Regional prototypes (best match, no transformer)",
    "ssl-regional-cpu": "Regional prototypes (best match, no transformer, CPU recipe)",
    "ssl-rpt": "RPT",
    "ssl-rpt-cpu": "RPT (CPU recipe)",
    "ssl-gmrd": "GMRD",
    "ssl-gmrd-cpu": "GMRD (CPU recipe)",
    "ssl-panet-cpu": "SSL-PANet (CPU recipe)",
    "alpnet-cpu": "ALPNet (annotated, CPU recipe)",
    "panet-cpu": "PANet (annotated, CPU recipe)",
    "senet-cpu": "SE-Net-style (CPU recipe)",
    "alpnet-init-cpu": "ALPNet-init (untrained light encoder)",
}

#: Published 1-shot mean Dice (Roy protocol) shown beside a row: store preset (the ``ingest``
#: preset recorded in the store) -> method family (preset name without ``-cpu``) -> (setting 1,
#: setting 2). Abd-MRI: the SSL-ALPNet paper's Tables 1-2 for its six rows, the Q-Net paper for
#: Q-Net, the RPT paper for RPT and the GMRD paper for GMRD. No entry
#: for ACDC: the papers' cardiac set is MS-CMRSeg bSSFP, not ACDC.
PUBLISHED: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "chaos-t2": {
        "senet": (42.51, 50.66), "panet": (38.53, 46.33), "alpnet": (51.28, 50.43), "alpnet-init": (None, 23.93),
        "ssl-panet": (63.17, 54.85), "ssl-alpnet": (78.84, 73.02), "ssl-qnet": (81.02, 68.59),
        "ssl-rpt": (82.44, 79.04), "ssl-gmrd": (82.90, 79.70),
    },
}


#: the setting-2 rule of each published setting-2 figure: Q-Net's, RPT's and GMRD's code drops a training
#: slice only when it shows all the test classes; SSL-ALPNet's (and its baselines') any of them
PUBLISHED_RULE: dict[str, str] = {"ssl-qnet": "all", "ssl-rpt": "all", "ssl-gmrd": "all"}


def published_dice(method: str, store_preset: str | None, setting: int, exclusion: str = "any") -> float | None:
    """The published mean Dice for ``method`` (a preset name) on a store ingested with
    ``store_preset`` in ``setting`` (setting 2: under the ``exclusion`` rule), or None."""
    family = method.removesuffix("-sgd").removesuffix("-bf16").removesuffix("-cpu")
    entry = PUBLISHED.get(store_preset or "", {}).get(family)
    if entry is None or (setting == 2 and PUBLISHED_RULE.get(family, "any") != exclusion):
        return None
    return entry[setting - 1]


#: recipes that put every method at one budget (``--recipe cpu``: what its ``-cpu`` preset is)
RECIPES = {"cpu": cpu_form}


def method_label(name: str, pooler: str | None = None, methods: Sequence[str] = ()) -> str:
    """The table row of a preset or spec file (``+ POOLER`` on the ``--pooler`` axis).

    A spec file is named by its stem or, when another spec file of ``methods`` (the bench's list)
    has the same stem, by as many of its last path parts as tell it apart (``sub/X``), so each
    gets a row and cells of its own.
    """
    label = METHOD_LABELS.get(name, Path(name).stem if name.endswith(".toml") else name)
    if name.endswith(".toml"):
        others = [Path(m.removesuffix(".toml")).parts for m in methods if m != name and m.endswith(".toml")]
        parts = Path(name.removesuffix(".toml")).parts
        depth = 1
        while depth < len(parts) and any(other[-depth:] == parts[-depth:] for other in others):
            depth += 1
        label = "/".join(parts[-depth:]) if depth > 1 else label
    return label if pooler is None else f"{label} + {pooler}"


def method_spec(name: str, recipe: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The spec of a preset name or spec file in the recipe's form (backbone, size and training
    table: :func:`fewshotkit.method.presets.cpu_form`), with ``overrides``."""
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import MethodSpec, preset_spec
    from fewshotkit.method.build import load_spec

    spec = load_spec(name) if name.endswith(".toml") else preset_spec(name)
    if recipe is not None:
        spec = MethodSpec.from_dict(RECIPES[recipe](spec.to_dict()))
    if overrides:
        spec = apply_overrides(spec, list(overrides))
    return spec
