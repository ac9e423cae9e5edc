"""The generic composed prototype method (backbone + pooler + classifier + losses) and shared math.

Any registered backbone, pooler and classifier compose into a :class:`ComposedPrototypeMethod`;
ALPNet and PANet are two such compositions. The helpers here (mask resizing, masked average,
cosine similarity) are the prototype math every pooler and classifier plugin may reuse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.host import contracts
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.classifier import Classifier
from fewshotkit.interfaces.method import Episode, Method, MethodOutput
from fewshotkit.interfaces.pooler import PrototypePooler
from fewshotkit.method.losses import alignment_loss, weighted_cross_entropy

MASK_EPS = 1e-5
NORM_EPS = 1e-4


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks (S, K, H, W) -> (S, K, h, w), bilinear (as the ALPNet reference); no-op if same size."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    return F.interpolate(masks, size=size, mode="bilinear", align_corners=False)


def masked_average(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """One prototype per mask channel, averaged over all slices.

    Args:
        features: (S, C, h, w); masks: (S, K, h, w) soft weights at feature resolution.

    Returns:
        (K, C): ``sum(f * m) / (sum(m) + 1e-5)`` over slices and pixels (zeros for an empty mask).
    """
    weighted = torch.einsum("schw,skhw->kc", features, masks)
    return weighted / (masks.sum(dim=(0, 2, 3)).unsqueeze(1) + MASK_EPS)


def cosine_scores(features: torch.Tensor, prototypes: torch.Tensor, scale: float) -> torch.Tensor:
    """Scaled cosine similarity of every feature vector with every prototype.

    Args:
        features: (Q, C, h, w); prototypes: (P, C).

    Returns:
        (Q, P, h, w): ``scale * cos(f, p)``; zero vectors give 0 instead of NaN.
    """
    f = F.normalize(features, dim=1, eps=NORM_EPS)
    p = F.normalize(prototypes, dim=1, eps=NORM_EPS)
    return scale * torch.einsum("qchw,pc->qphw", f, p)


def self_support_scores(features: torch.Tensor, prototypes: list[torch.Tensor], scores: torch.Tensor,
                        pooler: PrototypePooler, classifier: Classifier, threshold: float) -> torch.Tensor:
    """Score each query slice again with prototypes of its own confident regions added (self-support).

    A query's structure may look unlike the support's (another scan's contrast, another phase of the
    heart) while its pixels are alike among themselves. Where the first pass's softmax gives class c
    more than ``threshold``, the query's own features are pooled into class-c prototypes with the same
    pooler, added to the support's, and the slice is scored again, so ambiguous pixels are decided by
    their likeness to confident parts of the same slice as well as to the support (after Fan et al.,
    "Self-Support Few-Shot Semantic Segmentation", ECCV 2022). A class with no confident pixel keeps
    the support's prototypes only. One slice at a time, so the result does not depend on batching.

    Args:
        features: query features (Q, C, h, w); prototypes: the support's N + 1 tensors (P_c, C);
        scores: the first pass's logits (Q, N + 1, h, w); threshold: a softmax level in [0.5, 1).

    Returns:
        logits (Q, N + 1, h, w).
    """
    confident = (scores.softmax(dim=1) > threshold).to(features.dtype)  # (Q, N + 1, h, w)
    out = []
    for q in range(features.shape[0]):
        own = pooler(features[q : q + 1], confident[q : q + 1])
        merged = [torch.cat([support, mine]) if confident[q, c].any() else support
                  for c, (support, mine) in enumerate(zip(prototypes, own))]
        out.append(classifier(features[q : q + 1], merged))
    return torch.cat(out)


class ScaledCosineClassifier(Classifier):
    """Base of the cosine classifiers: ``scale`` x cosine similarity (20 in PANet and ALPNet)."""

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        if not float(scale) > 0:
            raise FewshotkitError(f"option 'classifier.scale' must be > 0, got {scale!r}")
        self.scale = float(scale)


class ComposedPrototypeMethod(Method):
    """Prototype few-shot segmentation: features -> prototypes -> cosine scores -> logits.

    Support and query slices of all B episodes go through the backbone in one batched call.
    Training losses (when ``self.training`` and query labels are given): ``ce``, the class-weighted
    cross-entropy on the queries, ``align``, the PANet alignment loss (omitted when
    ``align_weight`` is 0), and the classifier's :meth:`~Classifier.auxiliary_losses`.

    Args:
        backbone: the feature extractor (its ``prepare`` readies the images).
        pooler: support features and masks -> prototypes per class.
        classifier: query features and prototypes -> logits per class.
        bg_weight: the background's weight in the cross-entropy (foreground classes weigh 1).
        align_weight: the PANet alignment loss's factor (0 leaves it out).
        self_support: 0 (off), or a softmax level in [0.5, 1): at inference each query is scored again with prototypes of its own regions above it added (no weight changes; `eval --set options.self_support=0.7`).
    """

    def __init__(
        self,
        backbone: Backbone,
        pooler: PrototypePooler,
        classifier: Classifier,
        bg_weight: float = 0.05,
        align_weight: float = 1.0,
        self_support: float = 0.0,
    ) -> None:
        super().__init__()
        for option, value in (("bg_weight", bg_weight), ("align_weight", align_weight), ("self_support", self_support)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < float("inf"):
                raise FewshotkitError(f"option 'options.{option}' must be a number >= 0, got {value!r}")
        if self_support and not 0.5 <= self_support < 1.0:
            raise FewshotkitError(f"option 'options.self_support' must be 0 (off) or a softmax level in [0.5, 1), "
                                  f"got {self_support!r}")
        self.backbone = backbone
        self.pooler = pooler
        self.classifier = classifier
        classifier.setup(backbone.out_channels)
        self.bg_weight = float(bg_weight)
        self.align_weight = float(align_weight)
        self.self_support = float(self_support)
        self._contracts_checked = False

    @property
    def multiway(self) -> bool:
        """Whether several classes share one N-way episode at inference: only with a classifier of no
        ``max_ways`` limit; otherwise ``segment`` and the API score one class per episode and merge."""
        return self.classifier.max_ways is None

    def forward(self, episode: Episode) -> MethodOutput:
        """Episode (see :class:`Episode`) -> logits (B, Q, N + 1, H, W) and the training losses."""
        sup, qry, masks = episode.support_images, episode.query_images, episode.support_masks
        B, S, _, H, W = sup.shape
        Q = qry.shape[1]
        self.classifier.check_ways(masks.shape[2] - 1)
        if qry.shape[-2:] != sup.shape[-2:] or masks.shape[-2:] != sup.shape[-2:]:
            raise FewshotkitError(
                f"episode images differ in size: support {tuple(sup.shape[-2:])}, query "
                f"{tuple(qry.shape[-2:])}, masks {tuple(masks.shape[-2:])}; resize them to one size"
            )
        images = self.backbone.prepare(torch.cat([sup.reshape(B * S, *sup.shape[2:]),
                                                  qry.reshape(B * Q, *qry.shape[2:])]))
        feats = self.backbone(images)
        check = not self._contracts_checked  # once: the parts' outputs match their interfaces
        if check:
            contracts.check_features(self.backbone, images, feats)
        C, h, w = feats.shape[1:]
        sup_f = feats[: B * S].view(B, S, C, h, w)
        qry_f = feats[B * S :].view(B, Q, C, h, w)

        with_losses = self.training and episode.query_labels is not None
        logits, align_terms = [], []
        for b in range(B):
            prototypes = self.pooler(sup_f[b], masks[b])
            if check:
                contracts.check_prototypes(self.pooler, prototypes, masks.shape[2], C)
            scores = self.classifier(qry_f[b], prototypes)  # (Q, N + 1, h, w)
            if check:
                contracts.check_scores(self.classifier, scores, Q, masks.shape[2], (h, w))
                self._contracts_checked, check = True, False
            if self.self_support and not self.training:
                scores = self_support_scores(qry_f[b], prototypes, scores, self.pooler, self.classifier,
                                             self.self_support)
            scores = F.interpolate(scores, size=(H, W), mode="bilinear", align_corners=False)
            logits.append(scores)
            if with_losses and self.align_weight > 0:
                align_terms.append(
                    alignment_loss(sup_f[b], masks[b], qry_f[b], scores, self.pooler, self.classifier)
                )
        out = torch.stack(logits)  # (B, Q, N + 1, H, W)

        losses: dict[str, torch.Tensor] = {}
        if with_losses:
            assert episode.query_labels is not None
            losses["ce"] = weighted_cross_entropy(
                out.flatten(0, 1), episode.query_labels.flatten(0, 1).long(), self.bg_weight
            )
            if align_terms:
                losses["align"] = self.align_weight * torch.stack(align_terms).mean()
            losses.update(self.classifier.auxiliary_losses())
        return MethodOutput(out, losses)
