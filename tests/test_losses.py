"""Known answers for the training losses: the class-weighted cross-entropy (background weight,
ignored pixels) and the PANet alignment loss, alone and as the composed method computes them.

Every expected value is written out by hand from the definitions on tensors of a few pixels, so a
change of weighting, of which pixels count, or of which prototypes the alignment uses shows up."""

from __future__ import annotations

import math

import pytest
import torch

from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.method import Episode
from fewshotkit.method.composed import ComposedPrototypeMethod
from fewshotkit.method.losses import IGNORE_INDEX, alignment_loss, masks_to_labels, weighted_cross_entropy
from fewshotkit_panet.parts import CosineClassifier, MaskedAvgPooler


def softplus(x: float) -> float:
    """log(1 + e^x): the cross-entropy of a two-class pixel whose wrong logit leads by x."""
    return math.log1p(math.exp(x))


class Planes(Backbone):
    """A fixed backbone: pixel value x -> feature (x, 1 - x) at full resolution (no weights)."""

    in_channels, out_channels, stride = 1, 2, 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([images, 1 - images], dim=1)


def test_weighted_cross_entropy_weighs_the_background_and_skips_ignored_pixels():
    # three pixels of one query, two classes: logits (0, ln 3) everywhere except the ignored one
    logits = torch.tensor([[0.0, 0.0, 50.0], [math.log(3), math.log(3), -50.0]]).reshape(1, 2, 1, 3)
    labels = torch.tensor([[[0, 1, IGNORE_INDEX]]])
    # pixel 0 (background): -log(1/4); pixel 1 (foreground): -log(3/4); pixel 2 counts for nothing
    bg, fg = math.log(4), math.log(4 / 3)
    assert weighted_cross_entropy(logits, labels, bg_weight=0.05).item() == pytest.approx(
        (0.05 * bg + fg) / 1.05, rel=1e-6)
    assert weighted_cross_entropy(logits, labels, bg_weight=1.0).item() == pytest.approx((bg + fg) / 2, rel=1e-6)
    assert weighted_cross_entropy(logits, labels, bg_weight=0.0).item() == pytest.approx(fg, rel=1e-6)
    assert weighted_cross_entropy(logits, labels).item() == pytest.approx((0.05 * bg + fg) / 1.05, rel=1e-6)


def test_weighted_cross_entropy_of_only_ignored_pixels_is_zero_with_a_zero_gradient():
    logits = torch.tensor([[3.0, -1.0], [0.5, 2.0]]).reshape(1, 2, 1, 2).requires_grad_()
    loss = weighted_cross_entropy(logits, torch.full((1, 1, 2), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_masks_to_labels_marks_pixels_in_no_class_as_ignored():
    masks = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]]).unsqueeze(0)  # (1, 2, 1, 3)
    assert masks_to_labels(masks).tolist() == [[[0, 1, IGNORE_INDEX]]]


def test_alignment_loss_pools_the_query_prediction_and_segments_the_support():
    # query pixels (features): (1, 0), (1, 3), (0, 1), (0, 1); its logits predict foreground at
    # pixels 0 and 2, background at 1 and 3, so the query's prototypes are
    # fg = mean((1, 0), (0, 1)) ~ (1, 1) and bg = mean((1, 3), (0, 1)) ~ (1, 4)
    query_features = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 3.0, 1.0, 1.0]]).reshape(1, 2, 1, 4)
    query_logits = torch.tensor([[0.0, 5.0, 0.0, 5.0], [1.0, 0.0, 1.0, 0.0]]).reshape(1, 2, 1, 4)
    # support pixels: (1, 0) foreground, (0, 1) background, (7, -7) in no class (ignored)
    support_features = torch.tensor([[1.0, 0.0, 7.0], [0.0, 1.0, -7.0]]).reshape(1, 2, 1, 3)
    support_masks = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).reshape(1, 2, 1, 3)
    loss = alignment_loss(support_features, support_masks, query_features, query_logits,
                          MaskedAvgPooler(), CosineClassifier(scale=1.0))
    # cosine logits (scale 1) of the support pixels with the query's prototypes
    cos_fg_e0, cos_bg_e0 = 1 / math.sqrt(2), 1 / math.sqrt(17)
    cos_fg_e1, cos_bg_e1 = 1 / math.sqrt(2), 4 / math.sqrt(17)
    expected = (softplus(cos_bg_e0 - cos_fg_e0) + softplus(cos_fg_e1 - cos_bg_e1)) / 2  # unweighted, 2 pixels
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def _episode(batch: int = 1) -> Episode:
    """2 x 2 slices: support [[0, 1], [1, 0]] with the 1s as foreground; query [[1, 1], [0, 0.25]]
    labelled foreground except its 0 pixel."""
    support = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    fg = support.clone()
    query = torch.tensor([[1.0, 1.0], [0.0, 0.25]])
    labels = torch.tensor([[1, 1], [0, 1]])
    return Episode(support.expand(batch, 1, 1, 2, 2).clone(),
                   torch.stack([1 - fg, fg]).expand(batch, 1, 2, 2, 2).clone(),
                   query.expand(batch, 1, 1, 2, 2).clone(),
                   labels.expand(batch, 1, 2, 2).clone())


def _method(**options) -> ComposedPrototypeMethod:
    return ComposedPrototypeMethod(Planes(), MaskedAvgPooler(), CosineClassifier(scale=1.0), **options).train()


def test_the_composed_method_computes_both_losses_as_written():
    out = _method(bg_weight=0.05, align_weight=1.0)(_episode())
    # support prototypes: fg = (1, 0), bg = (0, 1). Query features: (1, 0), (1, 0), (0, 1), (0.25, 0.75)
    # -> logits (bg, fg): (0, 1), (0, 1), (1, 0), (3, 1) / sqrt(10)
    miss = softplus(2 / math.sqrt(10))  # the 0.25 pixel, labelled foreground, scored background
    ce = (2 * softplus(-1) + miss + 0.05 * softplus(-1)) / (3 + 0.05)
    assert out.losses["ce"].item() == pytest.approx(ce, rel=1e-5)
    # alignment: the query predicts fg at its two (1, 0) pixels, bg at (0, 1) and (0.25, 0.75):
    # prototypes fg = (1, 0), bg = (0.125, 0.875) ~ (1, 7); the support's (0, 1) pixels are
    # background, its (1, 0) pixels foreground; unweighted mean over the 4 support pixels
    align = (softplus(-7 / math.sqrt(50)) + softplus(1 / math.sqrt(50) - 1)) / 2
    assert out.losses["align"].item() == pytest.approx(align, rel=1e-5)
    assert set(out.losses) == {"ce", "align"}


def test_the_alignment_term_is_a_weighted_mean_over_episodes_and_can_be_left_out():
    single = _method()(_episode()).losses
    double = _method(align_weight=0.5)(_episode(batch=2)).losses
    assert double["ce"].item() == pytest.approx(single["ce"].item(), rel=1e-6)
    assert double["align"].item() == pytest.approx(0.5 * single["align"].item(), rel=1e-6)  # mean, not sum
    assert "align" not in _method(align_weight=0.0)(_episode()).losses
    heavier = _method(bg_weight=1.0)(_episode()).losses["ce"].item()
    assert heavier == pytest.approx((3 * softplus(-1) + softplus(2 / math.sqrt(10))) / 4, rel=1e-5)
