"""Rendering one slice with label and pseudolabel overlays (matplotlib Agg)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from fewshotkit.data.store.reader import SliceStore


def render_slice(store: SliceStore, vol: str, z: int, out: str | os.PathLike, set_name: str | None = None) -> Path:
    """Write a PNG: the image, the label overlay and a pseudolabel overlay (of ``set_name``, or of
    the store's only set; none when the store has several and ``set_name`` is None)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from skimage.segmentation import find_boundaries

    from fewshotkit.core.atomic import atomic_path

    image = store.pseudolabel_input(vol, z)
    label = store.label(vol, z)
    sets = store.pseudolabel_sets
    pseudo_name = store.resolve_pseudolabel_set(set_name, option="--set") if (set_name or len(sets) == 1) else None
    panels = 3 if pseudo_name else 2
    fig, axes = plt.subplots(1, panels, figsize=(4 * panels, 4.3), squeeze=False)
    axes = axes[0]
    colours = plt.get_cmap("tab10")
    for ax in axes:
        ax.imshow(image, cmap="gray")
        ax.set_axis_off()
    axes[0].set_title(f"volume {vol}, z={z}")
    overlay = np.ma.masked_equal(label, 0)
    axes[1].imshow(overlay, cmap=ListedColormap([colours(i % 10) for i in range(256)]), vmin=0, vmax=255,
                   alpha=0.5, interpolation="nearest")
    present = [f"{v}={n}" for v, n in store.classes.items() if np.any(label == v)]
    axes[1].set_title(textwrap.fill("label: " + (", ".join(present) or "none"), 48), fontsize=7)
    if pseudo_name:
        pseudo = store.pseudolabel(pseudo_name, vol, z)
        rng = np.random.default_rng(0)
        axes[2].imshow(np.ma.masked_equal(pseudo, 0), cmap=ListedColormap(rng.uniform(0.2, 1.0, (256, 3))),
                       alpha=0.45, interpolation="nearest")
        edges = np.ma.masked_equal(find_boundaries(pseudo, mode="inner").astype(np.uint8), 0)
        axes[2].imshow(edges, cmap=ListedColormap([(1, 1, 0)]), interpolation="nearest")
        axes[2].set_title(textwrap.fill(f"{pseudo_name} ({int(pseudo.max())} segments)", 48), fontsize=7)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out
