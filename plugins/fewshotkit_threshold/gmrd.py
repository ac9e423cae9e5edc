"""GMRD as published (Cheng et al., IEEE TMI 2024): several representative descriptors per class,
matched with the query and fused by learned decoders, foreground and background alike."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.method import Episode, MethodOutput
from fewshotkit.method.losses import masks_to_labels
from fewshotkit_threshold.common import MASK_EPS, LevelMethod, check_count, check_number, predicted_masks, upsample
from fewshotkit_threshold.gmrd_parts import (EDGE_ITERATIONS, DescriptorMLP, MatchingDecoder, descriptor_loss,
                                             erode, fill_outside, similarity)
from fewshotkit_threshold.rpt_losses import dilate


def masked_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(C, G, G) averaged under (G, G) -> (1, C)."""
    return (features * mask).sum(dim=(1, 2)).unsqueeze(0) / (mask.sum() + MASK_EPS)


class GMRDMethod(LevelMethod):
    """GMRD: for every class, ``fg_descriptors`` (background: ``bg_descriptors``) learned descriptors
    plus its global and edge averages; the query's cosine similarity to a class's descriptors goes
    through that side's decoder to one logit map; softmax over [background, classes].

    - Features: the backbone's finest level (GMRD: layer3 at stride 4), upsampled to ``grid`` x
      ``grid`` (GMRD: the 256 x 256 slice) with the masks resized to it.
    - Descriptors of a class in one shot: the MLP over the grid's positions of the features with
      the pixels outside the class filled from inside it (:func:`fill_outside`), the class's masked
      average and its edge average (foreground: mask - erode(mask, 3 x 3, twice); background: the
      ring dilate(fg, 3 x 3, twice) - fg around the foreground); shots averaged.
    - Losses: ``ce`` (class-weighted NLL, ``bg_weight``), ``align`` (descriptors of the query's
      predicted classes segment the supports through the same decoders, unweighted NLL, weight
      ``align_weight``) and ``descriptor`` (:func:`descriptor_loss`, weight ``descriptor_weight``).
    """

    levels = (0,)

    def __init__(self, backbone: Backbone, fg_descriptors: int = 100, bg_descriptors: int = 600, grid: int = 256,
                 bg_weight: float = 0.1, align_weight: float = 1.0, descriptor_weight: float = 0.5) -> None:
        super().__init__(backbone, bg_weight, align_weight)
        self.grid = check_count("grid", grid, 2)
        self.descriptor_weight = check_number("descriptor_weight", descriptor_weight)
        fg, bg = check_count("fg_descriptors", fg_descriptors, 1), check_count("bg_descriptors", bg_descriptors, 1)
        self.fg_mlp, self.bg_mlp = DescriptorMLP(self.grid, fg), DescriptorMLP(self.grid, bg)
        self.fg_decoder, self.bg_decoder = MatchingDecoder(fg), MatchingDecoder(bg)

    def class_descriptors(self, features: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """Descriptors of every class of one episode's slices.

        Args:
            features: (S, C, h, w); masks: (S, N + 1, H, W), background first.

        Returns:
            N + 1 tensors: background (bg_descriptors + 2, C), then each class (fg_descriptors + 2, C).
        """
        size = (self.grid, self.grid)
        up = F.interpolate(features, size=size, mode="bilinear", align_corners=True)
        small = (F.interpolate(masks, size=size, mode="bilinear", align_corners=False) > 0.5).to(features.dtype)
        outer = (dilate(1 - small[:, :1], EDGE_ITERATIONS) - (1 - small[:, :1])).clamp(0, 1)
        inner = (small[:, 1:] - erode(small[:, 1:])).clamp(0, 1)
        out = []
        for c in range(masks.shape[1]):
            mlp, edge = (self.bg_mlp, outer[:, 0]) if c == 0 else (self.fg_mlp, inner[:, c - 1])
            shots = [torch.cat([mlp(fill_outside(up[s], small[s, c])), masked_mean(up[s], small[s, c]),
                                masked_mean(up[s], edge[s])]) for s in range(features.shape[0])]
            out.append(torch.stack(shots).mean(dim=0))
        return out

    def segment(self, features: torch.Tensor, descriptors: list[torch.Tensor], size: torch.Size) -> torch.Tensor:
        """Log-probabilities (Q, N + 1, H, W) of ``features`` (Q, C, h, w) by the classes' descriptors."""
        logits = [self.bg_decoder(similarity(features, descriptors[0]))]
        logits += [self.fg_decoder(similarity(features, d)) for d in descriptors[1:]]
        return upsample(torch.cat(logits, dim=1), size).log_softmax(dim=1)

    def forward(self, episode: Episode) -> MethodOutput:
        """Episode -> log-probabilities (B, Q, N + 1, H, W) and, in training, ``ce``, ``align``, ``descriptor``."""
        masks = episode.support_masks
        ((sup, qry),) = self.level_features(episode)
        size = masks.shape[-2:]
        with_losses = self.training and episode.query_labels is not None
        out, terms = [], []
        for b in range(sup.shape[0]):
            support = self.class_descriptors(sup[b], masks[b])
            log_probs = self.segment(qry[b], support, size)
            out.append(log_probs)
            if with_losses:
                terms.append(self.episode_losses(sup[b], qry[b], masks[b], log_probs, support))
        logits = torch.stack(out)
        losses: dict[str, torch.Tensor] = {}
        if with_losses:
            losses["ce"] = self.query_loss(logits, episode)
            for name in terms[0]:
                losses[name] = torch.stack([t[name] for t in terms]).mean()
        return MethodOutput(logits, losses)

    def episode_losses(self, support: torch.Tensor, query: torch.Tensor, masks: torch.Tensor, log_probs: torch.Tensor,
                       descriptors: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``align`` and ``descriptor`` of one episode: both 0 (in the graph) when the query's
        prediction has no foreground, which GMRD's code skips."""
        predicted = predicted_masks(log_probs)
        zero = log_probs.sum() * 0.0
        if not bool(predicted[:, 1:].any()):
            return {"align": zero, "descriptor": zero}
        own = self.class_descriptors(query, predicted)
        align = F.nll_loss(self.segment(support, own, masks.shape[-2:]), masks_to_labels(masks), ignore_index=255)
        pairs = [descriptor_loss(descriptors[c], own[c], descriptors[0], own[0]) for c in range(1, len(own))]
        return {"align": self.align_weight * align,
                "descriptor": self.descriptor_weight * torch.stack(pairs).mean()}
