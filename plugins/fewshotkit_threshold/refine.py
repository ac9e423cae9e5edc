"""Q-Net's test-time prototype refinement (query-informed, a few gradient steps per query)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.method.composed import NORM_EPS

MASK_EPS = 1e-5


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
