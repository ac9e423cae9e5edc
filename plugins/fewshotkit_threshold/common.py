"""What the published threshold methods (Q-Net, RPT) and GMRD share: features of several levels,
prototypes pooled at image resolution, the threshold rule on probabilities, the query-informed
threshold head and the episode's checks.

Conventions: logits are log-probabilities, so the core's softmax, argmax and cross-entropy read them
unchanged (softmax of log p is p when p sums to 1, and the cross-entropy of log p is the papers'
NLL of log p).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.method import Episode, Method
from fewshotkit.interfaces.optimization import ParameterGroup, Trainable
from fewshotkit.method.composed import MASK_EPS, NORM_EPS
from fewshotkit.method.losses import masks_to_labels, weighted_cross_entropy
PROB_EPS = float(torch.finfo(torch.float32).eps)


def check_number(name: str, value: object, low: float = 0.0, high: float = float("inf")) -> float:
    """``value`` as a float in [low, high], else a one-line error naming ``options.NAME``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise FewshotkitError(f"option 'options.{name}' must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def check_count(name: str, value: object, low: int = 0) -> int:
    """``value`` as an integer >= low, else a one-line error naming ``options.NAME``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise FewshotkitError(f"option 'options.{name}' must be an integer >= {low}, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class HeadSettings:
    """The threshold head's options: ``hidden`` units; ``init_threshold`` None keeps PyTorch's
    initialisation (Q-Net's), a number starts T at it (ADNet's -10)."""

    hidden: int = 1000
    init_threshold: float | None = None

    def __post_init__(self) -> None:
        check_count("hidden", self.hidden, 1)
        if self.init_threshold is not None:
            check_number("init_threshold", self.init_threshold, -1e6, 1e6)


def split_options(options: dict[str, Any], *groups: type) -> tuple[Any, ...]:
    """A method's flat spec options as one settings dataclass per group (each checks its values).

    Raises:
        FewshotkitError: naming an option no group has.
    """
    names = [f.name for group in groups for f in dataclasses.fields(group)]
    for key in options:
        if key not in names:
            raise FewshotkitError(f"unknown option 'options.{key}'. Valid options: {', '.join(sorted(names))}")
    return tuple(group(**{f.name: options[f.name] for f in dataclasses.fields(group) if f.name in options})
                 for group in groups)


def options_signature(*groups: type) -> inspect.Signature:
    """The signature ``(backbone, *, every field of groups)`` that the registry reads a method's
    spec options (names, defaults, types) from, for a method taking them as ``**options``."""
    params = [inspect.Parameter("backbone", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Backbone")]
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
               for group in groups for f in dataclasses.fields(group)]
    return inspect.Signature(params)


def pool_upsampled(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Masked average of features upsampled to the masks' size, averaged over shots (ADNet, Q-Net).

    Args:
        features: (S, C, h, w); masks: (S, K, H, W) soft weights at image resolution.

    Returns:
        (K, C): mean over shots s of ``sum(up(f_s) m_s) / (sum(m_s) + 1e-5)``.
    """
    up = F.interpolate(features, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    per_shot = torch.einsum("schw,skhw->skc", up, masks) / (masks.sum(dim=(2, 3)).unsqueeze(2) + MASK_EPS)
    return per_shot.mean(dim=0)


def threshold_probabilities(features: torch.Tensor, prototypes: torch.Tensor, threshold: torch.Tensor,
                            scale: float) -> torch.Tensor:
    """Class probabilities by the threshold rule: z_c = 0.5 (scale cos(f, p_c) + T), softmax([0, z]).

    For one way this is ADNet's and Q-Net's p_fg = 1 - sigmoid(0.5 (S - T)), S = -scale cos.

    Args:
        features: (Q, C, h, w); prototypes: (N, C) shared, or (Q, N, C) per query;
        threshold: T, a scalar tensor or (Q,).

    Returns:
        (Q, N + 1, h, w) probabilities, background first.
    """
    f = F.normalize(features, dim=1, eps=NORM_EPS)
    p = F.normalize(prototypes, dim=-1, eps=NORM_EPS)
    if p.ndim == 2:
        p = p.unsqueeze(0).expand(f.shape[0], -1, -1)
    t = threshold.reshape(-1, 1, 1, 1) if threshold.ndim else threshold
    z = 0.5 * (scale * torch.einsum("qchw,qnc->qnhw", f, p) + t)
    return torch.cat([torch.zeros_like(z[:, :1]), z], dim=1).softmax(dim=1)


def log_probabilities(probs: torch.Tensor) -> torch.Tensor:
    """log p clamped as the papers' code does (p in [eps, 1 - eps])."""
    return probs.clamp(PROB_EPS, 1 - PROB_EPS).log()


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(Q, K, h, w) -> (Q, K, H, W), bilinear with aligned corners (the papers' probability upsampling)."""
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=True)


def predicted_masks(probs: torch.Tensor) -> torch.Tensor:
    """One-hot (Q, K, H, W) of the argmax of ``probs`` (Q, K, H, W), detached."""
    return F.one_hot(probs.detach().argmax(dim=1), probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)


class ThresholdHead(Trainable, nn.Module):
    """Q-Net's query-informed threshold: T = fc2(fc1(GAP(f))), fc1: C -> ``hidden``, fc2: hidden -> 1,
    no non-linearity between them (Q-Net: the pooled last stage through ResNet's fc and a 1000 -> 1
    layer). ``init_threshold`` None keeps PyTorch's default initialisation (Q-Net's); a number starts
    the head at that constant (fc2's weight 0, its bias the number: ADNet's -10). It trains in the
    ``threshold`` parameter group (the training's rate and weight decay unless
    ``training.groups.threshold`` sets others), as the threshold classifiers' heads do."""

    def __init__(self, channels: int, hidden: int = 1000, init_threshold: float | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, 1)
        if init_threshold is not None:
            nn.init.zeros_(self.fc2.weight)
            nn.init.constant_(self.fc2.bias, float(init_threshold))
        self.last_threshold: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w) -> T (B,)."""
        threshold = self.fc2(self.fc1(features.mean(dim=(2, 3)))).squeeze(1)
        self.last_threshold = threshold.detach().float().mean()
        return threshold

    def parameter_groups(self) -> dict[str, ParameterGroup]:
        """The head's trainable parameters as the group ``threshold``."""
        return {"threshold": ParameterGroup([p for p in self.parameters() if p.requires_grad])}

    def monitored(self) -> dict[str, torch.Tensor]:
        """``threshold``: the mean T of the last forward pass."""
        return {"threshold": self.last_threshold} if self.last_threshold is not None else {}


class LevelMethod(Method):
    """Base of the methods that read several feature levels of one backbone pass.

    ``levels``: indexes into the backbone's :meth:`~Backbone.feature_levels` (finest first); a
    backbone without them fails with a one-line error before training starts.
    """

    levels: tuple[int, ...] = (-1,)

    def __init__(self, backbone: Backbone, bg_weight: float, align_weight: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.bg_weight = check_number("bg_weight", bg_weight)
        self.align_weight = check_number("align_weight", align_weight)
        backbone.check_levels(self.levels)

    def query_loss(self, logits: torch.Tensor, episode: Episode) -> torch.Tensor:
        """The weighted cross-entropy (background ``bg_weight``) of logits (B, Q, 2, H, W) against
        the episode's query labels (B, Q, H, W)."""
        assert episode.query_labels is not None
        return weighted_cross_entropy(logits.flatten(0, 1), episode.query_labels.flatten(0, 1).long(), self.bg_weight)

    def level_features(self, episode: Episode) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per level: support features (B, S, C, h, w) and query features (B, Q, C, h, w)."""
        sup, qry, masks = episode.support_images, episode.query_images, episode.support_masks
        B, S = sup.shape[:2]
        Q = qry.shape[1]
        if qry.shape[-2:] != sup.shape[-2:] or masks.shape[-2:] != sup.shape[-2:]:
            raise FewshotkitError(
                f"episode images differ in size: support {tuple(sup.shape[-2:])}, query "
                f"{tuple(qry.shape[-2:])}, masks {tuple(masks.shape[-2:])}; resize them to one size"
            )
        images = self.backbone.prepare(torch.cat([sup.flatten(0, 1), qry.flatten(0, 1)]))
        out = []
        for feats in self.backbone.forward_levels(images, self.levels):
            C, h, w = feats.shape[1:]
            out.append((feats[: B * S].view(B, S, C, h, w), feats[B * S :].view(B, Q, C, h, w)))
        return out


def threshold_alignment(support_levels: Sequence[torch.Tensor], query_levels: Sequence[torch.Tensor],
                        query_probs: torch.Tensor, support_masks: torch.Tensor, threshold: torch.Tensor,
                        scale: float, weights: Sequence[float]) -> torch.Tensor:
    """Q-Net's (and RPT's) alignment loss: the query's predicted mask, at image resolution, pools
    query prototypes (per level, features upsampled) that must segment the supports under the
    query's threshold; levels fused by ``weights``. ADNet's pools at feature resolution instead.

    Args:
        support_levels: per level (S, C, h, w); query_levels: per level (Q, C, h, w);
        query_probs: (Q, N + 1, H, W); support_masks: (S, N + 1, H, W); threshold: scalar tensor.

    Returns:
        the unweighted NLL on the supports; 0 (in the graph) when nothing is predicted foreground,
        which the papers' code skips.
    """
    predicted = predicted_masks(query_probs)
    if not bool(predicted[:, 1:].any()):
        return query_probs.sum() * 0.0
    size = support_masks.shape[-2:]
    fused = sum(w * upsample(threshold_probabilities(s, pool_upsampled(q, predicted)[1:], threshold, scale), size)
                for s, q, w in zip(support_levels, query_levels, weights))
    assert isinstance(fused, torch.Tensor)
    return weighted_cross_entropy(log_probabilities(fused), masks_to_labels(support_masks), bg_weight=1.0)
