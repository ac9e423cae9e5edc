"""Training losses shared by the few-shot methods: class-weighted cross-entropy, PANet alignment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from fewshotkit.interfaces.classifier import Classifier
    from fewshotkit.interfaces.pooler import PrototypePooler

IGNORE_INDEX = 255


def class_weights(num_classes: int, bg_weight: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(num_classes,) weights: ``bg_weight`` for class 0 (background), 1.0 for every foreground class."""
    weights = torch.ones(num_classes, device=device, dtype=dtype)
    weights[0] = bg_weight
    return weights


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, bg_weight: float = 0.05) -> torch.Tensor:
    """Cross-entropy with background weight ``bg_weight`` and foreground weight 1.

    Args:
        logits: (Q, N + 1, H, W) unnormalised class scores.
        labels: (Q, H, W) long in 0..N; ``255`` marks pixels to ignore.

    Returns:
        scalar: the weighted mean over non-ignored pixels (0 when every pixel is ignored).
    """
    weights = class_weights(logits.shape[1], bg_weight, logits.device, logits.dtype)
    valid = labels != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0  # keeps the graph, contributes nothing
    return F.cross_entropy(logits, labels, weight=weights, ignore_index=IGNORE_INDEX)


def masks_to_labels(masks: torch.Tensor) -> torch.Tensor:
    """One-hot masks (S, N + 1, H, W) -> labels (S, H, W); pixels in no class become ignored (255)."""
    labels = masks.argmax(dim=1)
    labels[masks.sum(dim=1) <= 0] = IGNORE_INDEX
    return labels


def alignment_loss(
    support_features: torch.Tensor,
    support_masks: torch.Tensor,
    query_features: torch.Tensor,
    query_logits: torch.Tensor,
    pooler: "PrototypePooler",
    classifier: "Classifier",
) -> torch.Tensor:
    """PANet prototype-alignment loss: prototypes from the queries must segment the supports.

    The query's predicted segmentation (detached argmax, one-hot) is the mask the prototypes are
    pooled with; the support slices are then classified with them and compared to the support
    masks with an unweighted cross-entropy, as in PANet.

    Args:
        support_features: (S, C, h, w).
        support_masks: (S, N + 1, H, W) one-hot, background first.
        query_features: (Q, C, h, w).
        query_logits: (Q, N + 1, H, W) the query prediction at image resolution.
        pooler, classifier: the parts the method segments the queries with.

    Returns:
        scalar loss.
    """
    num_classes = query_logits.shape[1]
    predicted = query_logits.detach().argmax(dim=1)  # (Q, H, W)
    pred_masks = F.one_hot(predicted, num_classes).permute(0, 3, 1, 2).to(query_features.dtype)
    prototypes = pooler(query_features, pred_masks)
    support_logits = classifier(support_features, prototypes)  # (S, N + 1, h, w)
    support_logits = F.interpolate(
        support_logits, size=support_masks.shape[-2:], mode="bilinear", align_corners=False
    )
    return weighted_cross_entropy(support_logits, masks_to_labels(support_masks), bg_weight=1.0)


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes.

    Args:
        logits: (Q, N + 1, H, W); labels: (Q, H, W) long, 255 = ignore.
    """
    probs = logits.softmax(dim=1)
    valid = (labels != IGNORE_INDEX).unsqueeze(1).to(probs.dtype)
    target = F.one_hot(labels.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    probs, target = probs[:, 1:] * valid, target[:, 1:] * valid
    inter = (probs * target).sum(dim=(0, 2, 3))
    denom = probs.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3))
    return 1.0 - ((2.0 * inter + eps) / (denom + eps)).mean()
