"""Q-Net as published (Shen et al. 2023): two feature levels, a query-informed threshold on the
deepest pooled features, probabilities fused 0.9 / 0.1, test-time prototype refinement."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.method import Episode, MethodOutput
from fewshotkit_threshold.common import (HeadSettings, LevelMethod, ThresholdHead, check_count, check_number,
                                         log_probabilities, options_signature, pool_upsampled, split_options,
                                         threshold_alignment, threshold_probabilities, upsample)
from fewshotkit_threshold.refine import refine_prototypes_bce


@dataclasses.dataclass(frozen=True)
class QNetSettings:
    """Q-Net's fusion ``alpha``, cosine ``scale`` and test-time refinement (``refine_steps`` Adam
    steps at ``refine_lr``; 0 steps: off)."""

    alpha: float = 0.9
    scale: float = 20.0
    refine_steps: int = 7
    refine_lr: float = 0.01

    def __post_init__(self) -> None:
        check_number("alpha", self.alpha, 0.0, 1.0)
        check_number("scale", self.scale)
        check_count("refine_steps", self.refine_steps)
        check_number("refine_lr", self.refine_lr)


@dataclasses.dataclass(frozen=True)
class QNetLosses:
    """Q-Net's loss weights: the cross-entropy's background ``bg_weight`` and ``align_weight``."""

    bg_weight: float = 0.1
    align_weight: float = 1.0


class QNetMethod(LevelMethod):
    """Q-Net's dual-scale threshold segmenter.

    - Levels: the backbone's finest (Q-Net: layer3, stride 4) and deepest (layer4, stride 8).
    - Per level, one prototype per class: the support features upsampled to the mask and averaged
      under it (shots averaged); p_l = the threshold rule with ``scale`` 20 and the query's T.
    - T = ThresholdHead(GAP(deepest query features)): two stacked linear layers (C -> ``hidden``
      -> 1), no threshold loss.
    - Fusion: p = ``alpha`` p_fine + (1 - ``alpha``) p_deep, each upsampled to the image.
    - Inference: each query's prototypes are refined per level by ``refine_steps`` Adam steps at
      ``refine_lr`` (:func:`~fewshotkit_threshold.refine.refine_prototypes_bce`); 0 turns it off.
    - Losses: ``ce`` (class-weighted NLL of log p, background ``bg_weight``), ``align`` (the query's
      prediction segments the supports at both levels under the query's T, weight ``align_weight``).
    """

    levels = (0, -1)

    def __init__(self, backbone: Backbone, **options: Any) -> None:
        """``options``: the fields of :class:`QNetSettings`, :class:`HeadSettings` and :class:`QNetLosses`."""
        settings, head, losses = split_options(options, QNetSettings, HeadSettings, QNetLosses)
        super().__init__(backbone, losses.bg_weight, losses.align_weight)
        self.alpha, self.scale = float(settings.alpha), float(settings.scale)
        self.refine_steps, self.refine_lr = settings.refine_steps, float(settings.refine_lr)
        self.head = ThresholdHead(backbone.feature_levels()[-1].channels, head.hidden, head.init_threshold)

    def level_probabilities(self, query: torch.Tensor, prototypes: torch.Tensor,
                            threshold: torch.Tensor) -> torch.Tensor:
        """One level: query features (Q, C, h, w), prototypes (N, C), T (Q,) -> (Q, N + 1, h, w),
        refined per query at inference when ``refine_steps`` > 0."""
        if self.training or self.refine_steps == 0:
            return threshold_probabilities(query, prototypes, threshold, self.scale)
        refined = refine_prototypes_bce(query, prototypes, threshold, self.scale, self.refine_steps, self.refine_lr)
        return threshold_probabilities(query, refined, threshold, self.scale)

    def forward(self, episode: Episode) -> MethodOutput:
        """Episode -> log-probabilities (B, Q, N + 1, H, W) and, in training, ``ce`` and ``align``."""
        masks = episode.support_masks
        (sup_fine, qry_fine), (sup_deep, qry_deep) = self.level_features(episode)
        B, Q = qry_deep.shape[:2]
        size = masks.shape[-2:]
        thresholds = self.head(qry_deep.flatten(0, 1)).view(B, Q)
        weights = (self.alpha, 1.0 - self.alpha)
        with_losses = self.training and episode.query_labels is not None
        logits, align = [], []
        for b in range(B):
            probs = sum(w * upsample(self.level_probabilities(qry[b], pool_upsampled(sup[b], masks[b])[1:],
                                                              thresholds[b]), size)
                        for w, sup, qry in zip(weights, (sup_fine, sup_deep), (qry_fine, qry_deep)))
            assert isinstance(probs, torch.Tensor)
            logits.append(log_probabilities(probs))
            if with_losses and self.align_weight > 0:
                align.append(threshold_alignment((sup_fine[b], sup_deep[b]), (qry_fine[b], qry_deep[b]), probs,
                                                 masks[b], thresholds[b].mean(), self.scale, weights))
        out = torch.stack(logits)
        losses: dict[str, torch.Tensor] = {}
        if with_losses:
            losses["ce"] = self.query_loss(out, episode)
            if align:
                losses["align"] = self.align_weight * torch.stack(align).mean()
        return MethodOutput(out, losses)


QNetMethod.__signature__ = options_signature(QNetSettings, HeadSettings, QNetLosses)  # type: ignore[attr-defined]
