"""PANet parts (Wang et al. 2019): masked-average prototypes and the nearest-prototype cosine classifier."""

from __future__ import annotations

import torch

from fewshotkit.method.composed import ScaledCosineClassifier, cosine_scores, masked_average, resize_masks
from fewshotkit.interfaces.pooler import PrototypePooler


class MaskedAvgPooler(PrototypePooler):
    """One prototype per class: the masked average of the support features over all shots.

    Masks are resized to the feature size (bilinear). An empty class gets a zero prototype, which
    the cosine classifiers score as 0 everywhere.
    """

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """features (S, C, h, w), masks (S, N + 1, H, W) -> N + 1 tensors (1, C)."""
        masks = resize_masks(masks.to(features.dtype), features.shape[-2:])
        protos = masked_average(features, masks)  # (N + 1, C)
        return list(protos.unsqueeze(1).unbind(0))


class CosineClassifier(ScaledCosineClassifier):
    """PANet's classifier: ``scale * cos(f, p_c)`` per class.

    Made for one prototype per class; given several, a class scores its best-matching prototype
    (nearest-prototype rule), which equals PANet when there is one.
    """

    def forward(self, features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
        """features (Q, C, h, w), N + 1 prototype tensors (P_c, C) -> logits (Q, N + 1, h, w)."""
        return torch.stack(
            [cosine_scores(features, protos, self.scale).amax(dim=1) for protos in prototypes], dim=1
        )

