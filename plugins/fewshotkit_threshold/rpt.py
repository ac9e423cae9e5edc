"""RPT as published (Zhu et al., MICCAI 2023): regional prototypes on the finer feature grid, refined
by a bias-alleviated transformer against a coarse query prototype, fused into one prototype."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.method import Episode, MethodOutput
from fewshotkit.method.losses import IGNORE_INDEX
from fewshotkit_threshold.bat import BiasAlleviatedBlock
from fewshotkit_threshold.common import (MASK_EPS, HeadSettings, LevelMethod, ThresholdHead, check_count,
                                         check_number, log_probabilities, options_signature, pool_upsampled,
                                         predicted_masks, split_options, threshold_alignment,
                                         threshold_probabilities, upsample)
from fewshotkit_threshold.regional import farthest_points
from fewshotkit_threshold.rpt_losses import periphery_loss, prototype_loss, self_query_loss


def partition_prototypes(features: torch.Tensor, mask: torch.Tensor, regions: int, strict: bool) -> torch.Tensor:
    """RPT's regional prototypes of one support slice.

    The mask is resized to the feature grid (bilinear) and every pixel above 0 is foreground;
    ``regions`` centres by farthest-point sampling (the first: the pixel nearest the centroid),
    each pixel joins its nearest centre, a region's prototype is its mean feature. A foreground
    with fewer grid pixels than ``regions`` gets one region per pixel.

    Args:
        features: (C, h, w); mask: (H, W) at image resolution; strict: raise when the mask has
            foreground but fewer foreground pixels than ``regions``.

    Returns:
        (R, C), R = min(regions, foreground grid pixels); (0, C) when none is left on the grid.
    """
    with torch.no_grad():
        count = int((mask > 0).sum())
        if strict and 0 < count < regions:
            raise FewshotkitError(
                f"option 'options.regions' = {regions} is larger than the support's {count} foreground pixels: "
                f"lower it (e.g. --set options.regions={count}) or use a support slice showing more of the structure")
        small = F.interpolate(mask[None, None], size=features.shape[-2:], mode="bilinear", align_corners=False)
        pixels = torch.nonzero(small[0, 0] > 0)  # (n, 2)
        if pixels.shape[0] == 0:
            return features.new_zeros(0, features.shape[0])
        centres = pixels[farthest_points(pixels, regions)]
        assign = F.one_hot(torch.cdist(pixels.float(), centres.float()).argmin(dim=1), centres.shape[0])
    assign = assign.to(features.dtype)  # (n, R)
    vectors = features[:, pixels[:, 0], pixels[:, 1]].T  # (n, C)
    return (assign.T @ vectors) / assign.sum(dim=0).unsqueeze(1)


def foreground_probability(features: torch.Tensor, prototypes: torch.Tensor, threshold: torch.Tensor,
                           scale: float) -> torch.Tensor:
    """One class's p_fg = sigmoid(0.5 (scale cos(f, p_q) + T_q)) per query: (Q, C, h, w), (Q, C), (Q,) -> (Q, h, w)."""
    return threshold_probabilities(features, prototypes.unsqueeze(1), threshold, scale)[:, 1]


def soft_average(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(Q, C, h, w) averaged under (Q, h, w) soft weights -> (Q, C)."""
    return torch.einsum("qchw,qhw->qc", features, weights) / (weights.sum(dim=(1, 2)).unsqueeze(1) + MASK_EPS)


@dataclasses.dataclass(frozen=True)
class RPTSettings:
    """RPT's ``regions`` per support slice, BaT ``iterations`` and ``heads``, cosine ``scale``.
    ``regions`` defaults to 10, the count of RPT's code before 2024-03; ``ssl-rpt`` sets 100, the
    count of its code since then, whose fusion and losses this method follows."""

    regions: int = 10
    iterations: int = 3
    heads: int = 3
    scale: float = 20.0

    def __post_init__(self) -> None:
        check_count("regions", self.regions, 1)
        check_count("iterations", self.iterations, 1)
        check_count("heads", self.heads, 1)
        check_number("scale", self.scale)


@dataclasses.dataclass(frozen=True)
class RPTLosses:
    """RPT's loss weights: the cross-entropy's background ``bg_weight``, then ``align_weight``,
    ``periphery_weight``, ``prototype_weight`` and ``self_query_weight`` (0 leaves a term out)."""

    bg_weight: float = 0.1
    align_weight: float = 1.0
    periphery_weight: float = 0.1
    prototype_weight: float = 0.1
    self_query_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("periphery_weight", "prototype_weight", "self_query_weight"):
            check_number(name, getattr(self, name))


class RPTMethod(LevelMethod):
    """RPT: regional prototypes -> BaT (``iterations`` passes, shared weights) -> one prototype.

    Levels: regions on the backbone's finest level (RPT: layer3, stride 4); the query-informed
    threshold T = ThresholdHead(GAP(deepest level)), per image (the query's for query predictions,
    each support's own for the periphery loss). Per class: the global prototype g (features
    upsampled to the mask, averaged under it); the regional prototypes P of every shot; a coarse
    query prototype q from the query's prediction with g; then ``iterations`` times: P = BaT(P, q),
    prototype = mean(P) + g, q = the query features averaged under the new prediction. The final
    prediction uses the last prototype.

    Losses: ``ce`` (class-weighted NLL, ``bg_weight``), ``align`` (ADNet-style, the query's T),
    ``periphery`` (``periphery_weight``), ``prototype`` (``prototype_weight``) and ``self_query``
    (``self_query_weight``): see :mod:`fewshotkit_threshold.rpt_losses`.
    """

    levels = (0, -1)

    def __init__(self, backbone: Backbone, **options: Any) -> None:
        """``options``: the fields of :class:`RPTSettings`, :class:`HeadSettings` and :class:`RPTLosses`."""
        settings, head, losses = split_options(options, RPTSettings, HeadSettings, RPTLosses)
        super().__init__(backbone, losses.bg_weight, losses.align_weight)
        self.regions, self.iterations, self.scale = settings.regions, settings.iterations, float(settings.scale)
        self.weights = {"periphery": float(losses.periphery_weight), "prototype": float(losses.prototype_weight),
                        "self_query": float(losses.self_query_weight)}
        fine, deepest = backbone.feature_levels()[0], backbone.feature_levels()[-1]
        self.head = ThresholdHead(deepest.channels, head.hidden, head.init_threshold)
        self.bat = BiasAlleviatedBlock(fine.channels, settings.heads)

    def class_prototype(self, support: torch.Tensor, masks: torch.Tensor, glob: torch.Tensor, query: torch.Tensor,
                        threshold: torch.Tensor) -> torch.Tensor:
        """One class's fused prototype per query.

        Args:
            support: (S, C, h, w); masks: the class's (S, H, W); glob: its global prototype (C,);
            query: (Q, C, h, w); threshold: (Q,).

        Returns:
            (Q, C).
        """
        parts = torch.cat([partition_prototypes(support[s], masks[s], self.regions, strict=not self.training)
                           for s in range(support.shape[0])])
        prototype = glob.unsqueeze(0).expand(query.shape[0], -1)
        if parts.shape[0] == 0:
            return prototype
        regions = parts.unsqueeze(0).expand(query.shape[0], -1, -1)
        coarse = soft_average(query, foreground_probability(query, prototype, threshold, self.scale))
        for _ in range(self.iterations):
            regions = self.bat(regions, coarse)
            prototype = regions.mean(dim=1) + glob
            coarse = soft_average(query, foreground_probability(query, prototype, threshold, self.scale))
        return prototype

    def forward(self, episode: Episode) -> MethodOutput:
        """Episode -> log-probabilities (B, Q, N + 1, H, W) and, in training, the five loss terms."""
        masks = episode.support_masks
        (sup_fine, qry_fine), (sup_deep, qry_deep) = self.level_features(episode)
        B, S = sup_deep.shape[:2]
        Q = qry_deep.shape[1]
        size = masks.shape[-2:]
        t_query = self.head(qry_deep.flatten(0, 1)).view(B, Q)
        t_support = self.head(sup_deep.flatten(0, 1)).view(B, S)
        with_losses = self.training and episode.query_labels is not None
        logits, terms = [], []
        for b in range(B):
            glob = pool_upsampled(sup_fine[b], masks[b])  # (N + 1, C)
            fused = torch.stack([self.class_prototype(sup_fine[b], masks[b, :, c], glob[c], qry_fine[b], t_query[b])
                                 for c in range(1, masks.shape[2])], dim=1)  # (Q, N, C)
            probs = upsample(threshold_probabilities(qry_fine[b], fused, t_query[b], self.scale), size)
            logits.append(log_probabilities(probs))
            if with_losses:
                assert episode.query_labels is not None
                terms.append(self.episode_losses(probs, glob, masks[b], episode.query_labels[b], t_support[b],
                                                 t_query[b], sup_fine[b], qry_fine[b]))
        out = torch.stack(logits)
        losses: dict[str, torch.Tensor] = {}
        if with_losses:
            losses["ce"] = self.query_loss(out, episode)
            for name in terms[0]:
                losses[name] = torch.stack([t[name] for t in terms]).mean()
        return MethodOutput(out, losses)

    def episode_losses(self, probs: torch.Tensor, glob: torch.Tensor, masks: torch.Tensor,
                       labels: torch.Tensor, t_support: torch.Tensor, t_query: torch.Tensor, support: torch.Tensor,
                       query: torch.Tensor) -> dict[str, torch.Tensor]:
        """One episode's weighted auxiliary terms (those with weight > 0).

        Args:
            probs: the query's fused probabilities (Q, N + 1, H, W); glob: the global prototypes
                (N + 1, C), background first; masks: the supports' (S, N + 1, H, W); labels: the
                queries' (Q, H, W), 255 ignored; t_support: each support's T (S,); t_query: each
                query's T (Q,); support: the supports' finest features (S, C, h, w); query: the
                queries' (Q, C, h, w).

        Returns:
            {``align``, ``periphery``, ``prototype``, ``self_query``}: scalar tensors, weighted.
        """
        terms: dict[str, torch.Tensor] = {}
        if self.align_weight > 0:
            terms["align"] = self.align_weight * threshold_alignment(
                (support,), (query,), probs, masks, t_query.mean(), self.scale, (1.0,))
        if self.weights["periphery"] > 0:
            # the first shot's ring only, as RPT
            terms["periphery"] = self.weights["periphery"] * periphery_loss(support[:1], masks[:1], glob[1:],
                                                                            t_support[0], self.scale)
        if self.weights["prototype"] > 0:
            terms["prototype"] = self.weights["prototype"] * prototype_loss(query, predicted_masks(probs), glob)
        if self.weights["self_query"] > 0:
            known = labels != IGNORE_INDEX
            own = F.one_hot(labels.clamp(max=probs.shape[1] - 1), probs.shape[1]).permute(0, 3, 1, 2)
            own = own.to(query.dtype) * known.unsqueeze(1)
            terms["self_query"] = self.weights["self_query"] * self_query_loss(query, own, labels, t_query,
                                                                               self.scale)
        return terms


RPTMethod.__signature__ = options_signature(RPTSettings, HeadSettings, RPTLosses)  # type: ignore[attr-defined]
