"""Q-Net's test-time prototype refinement (query-informed, a few gradient steps per query): the
classifiers' cosine form (:func:`refine_prototypes`) and the published one (:func:`refine_prototypes_bce`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.method.composed import MASK_EPS, NORM_EPS
from fewshotkit_threshold.common import threshold_probabilities


def refine_prototypes(features: torch.Tensor, prototypes: torch.Tensor, threshold: torch.Tensor, scale: float,
                      steps: int, lr: float) -> torch.Tensor:
    """Adapt the foreground prototypes to each query by ``steps`` Adam steps at rate ``lr``.

    Q-Net's objective: the query feature map rebuilt with the prototype inside the predicted
    foreground should match the query features. Here the mismatch is measured in the classifier's
    metric, 1 - cos(f, p*) with p* a pixel's best-matching prototype, weighted by the predicted
    foreground probability p_fg = sigmoid(0.5 (alpha cos + T)), which is held fixed within a step
    (recomputed after every step) so the objective cannot be lowered by shrinking the foreground.

    Works under ``torch.inference_mode`` (the evaluation's): the inputs are copied out of it.

    Args:
        features: query features (Q, C, h, w); prototypes: (P, C); threshold: scalar or (Q,).

    Returns:
        (Q, P, C): the refined prototypes of each query (detached).
    """
    with torch.inference_mode(False), torch.enable_grad():
        f = F.normalize(features.detach().clone(), dim=1, eps=NORM_EPS)
        t = threshold.detach().clone()
        t = t.reshape(-1, 1, 1) if t.ndim else t
        p = prototypes.detach().clone().unsqueeze(0).repeat(f.shape[0], 1, 1).requires_grad_(True)
        optimizer = torch.optim.Adam([p], lr=lr)
        for _ in range(steps):
            cos = torch.einsum("qchw,qpc->qphw", f, F.normalize(p, dim=-1, eps=NORM_EPS)).amax(dim=1)  # (Q, h, w)
            weight = torch.sigmoid(0.5 * (scale * cos + t)).detach()
            loss = ((weight * (1 - cos)).sum(dim=(1, 2)) / (weight.sum(dim=(1, 2)) + MASK_EPS)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return p.detach()


def _min_max(x: torch.Tensor) -> torch.Tensor:
    """Each query's map (Q, ...) scaled to [0, 1] by its own minimum and maximum."""
    low = x.flatten(1).amin(dim=1).view(-1, *[1] * (x.ndim - 1))
    high = x.flatten(1).amax(dim=1).view(-1, *[1] * (x.ndim - 1))
    return (x - low) / (high - low).clamp_min(MASK_EPS)


def refine_prototypes_bce(features: torch.Tensor, prototypes: torch.Tensor, threshold: torch.Tensor, scale: float,
                          steps: int, lr: float) -> torch.Tensor:
    """Q-Net's published test-time refinement of the foreground prototypes, for each query apart.

    Each of ``steps`` Adam steps at rate ``lr``: the current prediction's argmax marks the
    foreground of each class; the query feature map is rebuilt with each foreground pixel replaced
    by its class's prototype; the loss is the binary cross-entropy between the min-max normalised
    query features (through a sigmoid) as input and the rebuilt map, normalised the same way, as
    target. The gradient reaches the prototypes through the target only, as in Q-Net's code. The
    queries are refined together, each with its own prototypes and loss (their sum is minimised:
    Adam's steps are per element, so this equals refining them one by one).

    Works under ``torch.inference_mode`` (the evaluation's): the inputs are copied out of it.

    Args:
        features: query features (Q, C, h, w); prototypes: (N, C); threshold: T, scalar or (Q,).

    Returns:
        (Q, N, C): each query's refined prototypes (detached).
    """
    with torch.inference_mode(False), torch.enable_grad():
        f = features.detach().clone()
        t = threshold.detach().clone()
        p = prototypes.detach().clone().unsqueeze(0).repeat(f.shape[0], 1, 1).requires_grad_(True)
        optimizer = torch.optim.Adam([p], lr=lr)
        normalised = torch.sigmoid(_min_max(f))
        for _ in range(steps):
            probs = threshold_probabilities(f, p.detach(), t, scale)  # (Q, N + 1, h, w)
            fg = F.one_hot(probs.argmax(dim=1), probs.shape[1]).permute(0, 3, 1, 2)[:, 1:].to(f.dtype)
            rebuilt = f * (1 - fg.sum(dim=1, keepdim=True)) + torch.einsum("qnc,qnhw->qchw", p, fg)
            target = torch.sigmoid(_min_max(rebuilt))
            loss = F.binary_cross_entropy(normalised, target, reduction="none").flatten(1).mean(dim=1).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return p.detach()
