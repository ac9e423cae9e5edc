"""Regional prototypes (RPT-style, Zhu et al. 2023): the support foreground split into regions.

The foreground pixels of each support slice (at feature resolution) are partitioned by
farthest-point sampling of region centres and a Voronoi assignment of every pixel to its nearest
centre; each region's mask-weighted average feature is one prototype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.method.composed import masked_average, resize_masks
from fewshotkit import FewshotkitError
from fewshotkit.interfaces.pooler import PrototypePooler

CORE_LEVEL = 0.5  # pixels whose mask value exceeds this may be region centres


def farthest_points(points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (min(k, n),) of ``k`` farthest-point samples of ``points`` (n, 2), n >= 1.

    Deterministic: the first sample is the point nearest the centroid, every next one the point
    farthest from all samples so far (ties: the lowest index).
    """
    points = points.float()
    first = torch.argmin(((points - points.mean(dim=0)) ** 2).sum(dim=1))
    chosen = [first]
    dist = ((points - points[first]) ** 2).sum(dim=1)
    for _ in range(min(k, points.shape[0]) - 1):
        nxt = torch.argmax(dist)
        chosen.append(nxt)
        dist = torch.minimum(dist, ((points - points[nxt]) ** 2).sum(dim=1))
    return torch.stack(chosen)


def region_prototypes(features: torch.Tensor, mask: torch.Tensor, regions: int) -> torch.Tensor:
    """Prototypes of up to ``regions`` Voronoi regions of one slice's foreground.

    Args:
        features: (C, h, w); mask: (h, w) soft foreground weights at feature resolution.

    Returns:
        (R, C), 0 <= R <= ``regions`` (R = 0 for an empty mask): every pixel with weight > 0 joins
        its nearest centre's region; a region's prototype is its weighted mean feature.
    """
    with torch.no_grad():
        support = torch.nonzero(mask > 0)  # (n, 2) pixel coordinates (y, x)
        if support.shape[0] == 0:
            return features.new_zeros(0, features.shape[0])
        core = mask[support[:, 0], support[:, 1]] > CORE_LEVEL
        candidates = support[core] if bool(core.any()) else support
        centres = candidates[farthest_points(candidates, regions)]  # (R, 2)
        nearest = torch.cdist(support.float(), centres.float()).argmin(dim=1)  # (n,)
        assign = F.one_hot(nearest, centres.shape[0]).to(features.dtype)  # (n, R)
    weights = mask[support[:, 0], support[:, 1]].unsqueeze(1) * assign  # (n, R)
    vectors = features[:, support[:, 0], support[:, 1]].T  # (n, C)
    return (weights.T @ vectors) / weights.sum(dim=0).unsqueeze(1).clamp_min(1e-5)


class RegionalPooler(PrototypePooler):
    """Foreground classes: ``regions`` regional prototypes per support slice (+ the class's global
    masked-average prototype when ``include_global``); background: its masked-average prototype.

    ``regions`` defaults to 10, the RPT paper's partition count. A class with no support pixels
    gets its (zero) masked-average prototype, as with ``masked-avg``.
    """

    def __init__(self, regions: int = 10, include_global: bool = True) -> None:
        super().__init__()
        if not isinstance(regions, int) or isinstance(regions, bool) or regions < 1:
            raise FewshotkitError(f"option 'pooler.regions' must be a positive integer, got {regions!r}")
        self.regions = regions
        self.include_global = bool(include_global)

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """features (S, C, h, w), masks (S, N + 1, H, W) -> N + 1 tensors (P_c, C), P_c >= 1."""
        masks = resize_masks(masks.to(features.dtype), (features.shape[-2], features.shape[-1]))
        glob = masked_average(features, masks)  # (N + 1, C)
        out = [glob[:1]]
        for c in range(1, masks.shape[1]):
            parts = [region_prototypes(features[s], masks[s, c], self.regions) for s in range(features.shape[0])]
            if self.include_global or all(p.shape[0] == 0 for p in parts):
                parts.append(glob[c : c + 1])
            out.append(torch.cat(parts))
        return out
