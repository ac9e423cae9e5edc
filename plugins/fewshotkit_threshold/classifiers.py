"""Threshold classifiers: segment by thresholding the similarity to the foreground prototype(s).

ADNet (Hansen et al. 2022) scores a query pixel f with the anomaly score S = -alpha cos(f, p)
against the support's foreground prototype p and calls it foreground with probability
``1 - sigmoid(0.5 (S - T))`` for a learned threshold T; the background gets no prototype.
Q-Net (Shen et al. 2023) predicts T from the query's features instead. Both return 2-class logits
``[0, 0.5 (alpha cos + T)]``, whose softmax is exactly ``[1 - p_fg, p_fg]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.optimization import ParameterGroup
from fewshotkit.method.composed import NORM_EPS, ScaledCosineClassifier
from fewshotkit_threshold.refine import refine_prototypes

#: ADNet's threshold at initialisation (``t = -10``): foreground where cos(f, p) > 0.5 with alpha 20
ADNET_THRESHOLD = -10.0


def max_similarity(features: torch.Tensor, prototypes: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale`` x the best cosine similarity of each query feature to any of its prototypes.

    Args:
        features: (Q, C, h, w); prototypes: (P, C) shared by every query, or (Q, P, C) per query.

    Returns:
        (Q, 1, h, w).
    """
    f = F.normalize(features, dim=1, eps=NORM_EPS)
    p = F.normalize(prototypes, dim=-1, eps=NORM_EPS)
    if p.ndim == 2:
        p = p.unsqueeze(0).expand(f.shape[0], -1, -1)
    return scale * torch.einsum("qchw,qpc->qphw", f, p).amax(dim=1, keepdim=True)


def threshold_logits(similarity: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """2-class logits (Q, 2, h, w) from ``similarity`` (Q, 1, h, w) = alpha cos and T (scalar or (Q,)).

    softmax gives p_fg = sigmoid(0.5 (alpha cos + T)) = 1 - sigmoid(0.5 (S - T)) with S = -alpha cos.
    """
    t = threshold.reshape(-1, 1, 1, 1) if threshold.ndim else threshold
    fg = 0.5 * (similarity + t)
    return torch.cat([torch.zeros_like(fg), fg], dim=1)


class _ThresholdClassifier(ScaledCosineClassifier):
    """Shared forward: 1-way only; background prototypes are not used (nothing models the background)."""

    max_ways = 1

    def __init__(self, scale: float = 20.0, refine_steps: int = 0, refine_lr: float = 2e-3) -> None:
        super().__init__(scale)
        if not isinstance(refine_steps, int) or isinstance(refine_steps, bool) or refine_steps < 0:
            raise FewshotkitError(f"option 'classifier.refine_steps' must be an integer >= 0, got {refine_steps!r}")
        if not float(refine_lr) > 0:
            raise FewshotkitError(f"option 'classifier.refine_lr' must be > 0, got {refine_lr!r}")
        self.refine_steps = refine_steps
        self.refine_lr = float(refine_lr)
        self.last_threshold: torch.Tensor | None = None

    def threshold(self, features: torch.Tensor) -> torch.Tensor:
        """T for the queries ``features`` (Q, C, h, w): a scalar tensor or (Q,)."""
        raise NotImplementedError

    def threshold_parameters(self) -> list[nn.Parameter]:
        """The parameters that set T (trained in the ``threshold`` group)."""
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, ParameterGroup]:
        """T and its head train in group ``threshold`` (with the papers' settings by default: the
        training table's rate and weight decay; of the CPU presets only ``ssl-adnet-cpu``, a scalar
        T, sets its own: 10 x lr, no weight decay)."""
        params = [p for p in self.threshold_parameters() if p.requires_grad]
        return {"threshold": ParameterGroup(params)} if params else {}

    def monitored(self) -> dict[str, torch.Tensor]:
        """``threshold``: the mean T of the last forward pass: at evaluation over the queries; in
        training with alignment over the last episode's supports (the alignment loss calls the
        classifier on them after the queries)."""
        return {"threshold": self.last_threshold} if self.last_threshold is not None else {}

    def forward(self, features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
        """features (Q, C, h, w), 2 prototype tensors (background (P_0, C) unused, foreground (P_1, C))
        -> logits (Q, 2, h, w); several foreground prototypes score with their best match."""
        self.check_ways(len(prototypes) - 1)
        foreground = prototypes[1]
        threshold = self.threshold(features)
        self.last_threshold = threshold.detach().float().mean()
        if not self.training and self.refine_steps > 0:
            foreground = refine_prototypes(features, foreground, threshold, self.scale,
                                           self.refine_steps, self.refine_lr)
        return threshold_logits(max_similarity(features, foreground, self.scale), threshold)


class ThresholdClassifier(_ThresholdClassifier):
    """ADNet: one learned scalar threshold T (initialised at ``init_threshold``, ADNet's -10).

    Auxiliary loss ``threshold`` = ``threshold_weight`` x T / alpha (ADNet's regulariser, weight 1
    in its training script): it lowers T, i.e. asks for a tight foreground. ``learn_threshold=False``
    keeps T fixed (and drops the regulariser).
    """

    def __init__(self, scale: float = 20.0, init_threshold: float = ADNET_THRESHOLD, learn_threshold: bool = True,
                 threshold_weight: float = 1.0, refine_steps: int = 0, refine_lr: float = 2e-3) -> None:
        super().__init__(scale, refine_steps, refine_lr)
        if not float(threshold_weight) >= 0:
            raise FewshotkitError(f"option 'classifier.threshold_weight' must be >= 0, got {threshold_weight!r}")
        self.t = nn.Parameter(torch.tensor(float(init_threshold)), requires_grad=bool(learn_threshold))
        self.threshold_weight = float(threshold_weight)

    def threshold(self, features: torch.Tensor) -> torch.Tensor:
        return self.t

    def threshold_parameters(self) -> list[nn.Parameter]:
        return [self.t]

    def monitored(self) -> dict[str, torch.Tensor]:
        return {"threshold": self.t.detach()}

    def auxiliary_losses(self) -> dict[str, torch.Tensor]:
        if not self.t.requires_grad or self.threshold_weight == 0:
            return {}
        return {"threshold": self.threshold_weight * self.t / self.scale}


class QueryThresholdClassifier(_ThresholdClassifier):
    """Q-Net: T predicted from the features being segmented: T = w . GAP(f) + b.

    The head is one linear map on the globally average-pooled features (Q-Net's two stacked fully
    connected layers on the pooled encoder output compose to one affine map). It starts as ADNet:
    w = 0, b = ``init_threshold``. No threshold regulariser (Q-Net trains without one).
    ``refine_steps`` > 0 turns on a test-time prototype refinement in the classifier's cosine
    form (eval mode only; Q-Net's test script used 30 Adam steps at 2e-3 until 2022-10, 7 at 0.01
    with a BCE objective since: the ``qnet-dual`` method's refinement).
    """

    def __init__(self, scale: float = 20.0, init_threshold: float = ADNET_THRESHOLD, refine_steps: int = 0,
                 refine_lr: float = 2e-3) -> None:
        super().__init__(scale, refine_steps, refine_lr)
        self.init_threshold = float(init_threshold)
        self.head: nn.Linear | None = None

    def setup(self, channels: int) -> None:
        """Build the threshold head for C = ``channels`` features (w = 0, b = ``init_threshold``)."""
        self.head = nn.Linear(int(channels), 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, self.init_threshold)

    def threshold(self, features: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise FewshotkitError("classifier 'query-threshold' has no threshold head yet: call setup(C) with the "
                                  "feature dimension first (the composed methods do)")
        if features.shape[1] != self.head.in_features:
            raise FewshotkitError(f"classifier 'query-threshold' was set up for {self.head.in_features}-channel "
                                  f"features, got {features.shape[1]}: check backbone.out_channels")
        return self.head(features.mean(dim=(2, 3))).squeeze(1)  # (Q,)

    def threshold_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters()) if self.head is not None else []
