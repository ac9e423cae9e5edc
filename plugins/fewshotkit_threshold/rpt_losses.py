"""RPT's extra training losses (its released code): periphery, prototype and self-query."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.method.losses import IGNORE_INDEX, weighted_cross_entropy
from fewshotkit_threshold.common import log_probabilities, pool_upsampled, threshold_probabilities, upsample


def dilate(masks: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """Binary dilation with a 3 x 3 square, ``iterations`` times: (S, K, H, W) -> (S, K, H, W)."""
    for _ in range(iterations):
        masks = F.max_pool2d(masks, 3, stride=1, padding=1)
    return masks


def periphery_loss(support: torch.Tensor, masks: torch.Tensor, prototypes: torch.Tensor, threshold: torch.Tensor,
                   scale: float) -> torch.Tensor:
    """The ring just outside each structure must be told apart from the structure.

    Ring = dilate(mask, 3 x 3, once) - mask. Per class: p_ring = p(support | prototype of the dilated
    mask) - p(support | the class's prototype), both under the support's own T; the loss is the NLL
    of [1 - p_ring, p_ring] against the ring (clamped log, as RPT), averaged over the classes.

    Args:
        support: one support slice's features (1, C, h, w); masks: its (1, N + 1, H, W);
        prototypes: the foreground classes' global prototypes (N, C); threshold: scalar tensor.
    """
    fg = masks[:, 1:]
    dilated = dilate(fg)
    ring = (dilated - fg).clamp(0, 1)
    grown = pool_upsampled(support, dilated)  # (N, C)
    size = masks.shape[-2:]
    terms = []
    for c in range(fg.shape[1]):
        p_obj = upsample(threshold_probabilities(support, prototypes[c : c + 1], threshold, scale), size)[:, 1]
        p_grown = upsample(threshold_probabilities(support, grown[c : c + 1], threshold, scale), size)[:, 1]
        p_ring = p_grown - p_obj
        probs = torch.stack([1 - p_ring, p_ring], dim=1)
        # NLL of the clamped log, not a cross-entropy: p_ring may leave [0, 1], and RPT does not renormalise
        terms.append(F.nll_loss(log_probabilities(probs), ring[:, c].round().long()))
    return torch.stack(terms).mean()


def prototype_loss(query: torch.Tensor, predicted: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """MSE between each foreground class's query prototype (pooled under the query's predicted mask)
    and its global support prototype; classes predicted nowhere are skipped (0 when all are).

    Args:
        query: (Q, C, h, w); predicted: one-hot (Q, N + 1, H, W); prototypes: (N + 1, C).
    """
    own = pool_upsampled(query, predicted)
    present = [c for c in range(1, predicted.shape[1]) if bool(predicted[:, c].any())]
    if not present:
        return query.sum() * 0.0
    return torch.stack([F.mse_loss(own[c], prototypes[c]) for c in present]).mean()


def self_query_loss(query: torch.Tensor, own: torch.Tensor, labels: torch.Tensor, threshold: torch.Tensor,
                    scale: float) -> torch.Tensor:
    """The query segmented by prototypes of its own labelled structure (unweighted NLL).

    Args:
        query: (Q, C, h, w); own: the query's one-hot labels (Q, N + 1, H, W); labels: (Q, H, W)
        with 255 ignored; threshold: the queries' T (Q,).
    """
    prototypes = pool_upsampled(query, own)[1:]  # (N, C)
    probs = upsample(threshold_probabilities(query, prototypes, threshold, scale), labels.shape[-2:])
    labels = labels.long()
    if not bool((labels != IGNORE_INDEX).any()):
        return probs.sum() * 0.0
    return weighted_cross_entropy(log_probabilities(probs), labels, bg_weight=1.0)
