"""Known answers for the published successors' equations (Q-Net, RPT, GMRD): tiny tensors whose
outputs are worked out by hand, one test per equation of the method cards in docs/methods.md."""

from __future__ import annotations

import math
from typing import Sequence

import pytest
import torch
import torch.nn.functional as F

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone, FeatureLevel
from fewshotkit.interfaces.method import Episode
from fewshotkit_threshold.common import PROB_EPS, ThresholdHead, pool_upsampled, threshold_probabilities
from fewshotkit_threshold.refine import refine_prototypes_bce


#: log of the clamped probabilities 0 and 1: what a certain, wrong or right, pixel costs
PROB_LOG = (float(torch.tensor(PROB_EPS).log()), float(torch.tensor(1 - PROB_EPS).log()))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class FixedLevels(Backbone):
    """A backbone handing out fixed feature maps (one per level, finest first) for every image."""

    def __init__(self, maps: Sequence[torch.Tensor], strides: Sequence[int]) -> None:
        super().__init__()
        self.maps = [m.float() for m in maps]
        self.strides = list(strides)
        self.gain = torch.nn.Parameter(torch.ones(()))
        self.in_channels, self.out_channels, self.stride = 1, self.maps[-1].shape[0], self.strides[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_levels(images, (-1,))[0]

    def feature_levels(self) -> list[FeatureLevel]:
        return [FeatureLevel(s, m.shape[0]) for s, m in zip(self.strides, self.maps)]

    def forward_levels(self, images: torch.Tensor, levels: Sequence[int]) -> list[torch.Tensor]:
        return [self.gain * self.maps[i].expand(images.shape[0], -1, -1, -1) for i in self.check_levels(levels)]


def one_way_episode(fg: torch.Tensor, queries: int = 1) -> Episode:
    """A 1-shot 1-way episode with the support foreground ``fg`` (H, W)."""
    H, W = fg.shape
    masks = torch.stack([1 - fg, fg])[None, None].float()
    return Episode(torch.zeros(1, 1, 1, H, W), masks, torch.zeros(1, queries, 1, H, W))


# -- the threshold rule (ADNet, Q-Net, RPT) ----------------------------------------------------------
def test_threshold_rule_by_hand():
    # cos 1, 0.5, 0 and -1 to the prototype e_0; alpha 20, T -10: p_fg = sigmoid(0.5 (20 cos - 10))
    feats = torch.tensor([[1.0, 0.5, 0.0, -1.0], [0.0, math.sqrt(0.75), 1.0, 0.0]]).view(1, 2, 1, 4)
    probs = threshold_probabilities(feats, torch.tensor([[3.0, 0.0]]), torch.tensor(-10.0), 20.0)
    expected = [sigmoid(5), sigmoid(0), sigmoid(-5), sigmoid(-15)]
    assert probs[0, 1, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1, 1, 4))


def test_prototype_pools_features_upsampled_to_the_mask():
    # a 1 x 2 feature map [0, 4] upsampled to 1 x 4 (bilinear, half-pixel centres) is [0, 1, 3, 4];
    # the mask keeps the last two pixels: prototype (3 + 4) / 2 = 3.5 (1e-5 in the denominator)
    feats = torch.tensor([0.0, 4.0]).view(1, 1, 1, 2)
    mask = torch.tensor([0.0, 0.0, 1.0, 1.0]).view(1, 1, 1, 4)
    assert pool_upsampled(feats, mask).item() == pytest.approx(3.5, rel=1e-4)
    two_shots = pool_upsampled(torch.cat([feats, 2 * feats]), torch.cat([mask, mask]))
    assert two_shots.item() == pytest.approx((3.5 + 7.0) / 2, rel=1e-4)  # shots are averaged


def test_qnet_threshold_head_is_two_linear_layers_on_the_pooled_features():
    head = ThresholdHead(2, hidden=3)
    with torch.no_grad():
        head.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        head.fc1.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
        head.fc2.weight.copy_(torch.tensor([[1.0, 2.0, -1.0]]))
        head.fc2.bias.fill_(0.5)
    feats = torch.tensor([[1.0, 3.0], [2.0, 2.0]]).view(1, 2, 1, 2)  # GAP = (2, 2)
    # fc1: (2, 3, 3); fc2: 2 + 6 - 3 + 0.5 = 5.5 (no non-linearity in between)
    assert head(feats).item() == pytest.approx(5.5)
    assert ThresholdHead(2, init_threshold=-10.0)(torch.randn(3, 2, 4, 4)).tolist() == [-10.0] * 3


def test_threshold_alignment_by_hand():
    from fewshotkit_threshold.common import threshold_alignment

    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)  # pixel 0 is e_0, pixel 1 is e_1
    fg = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    masks = torch.cat([1 - fg, fg], dim=1)
    # the query predicts pixel 0: its prototype is e_0, which scores the support's pixel 0 with
    # p_fg = sigmoid(5) and pixel 1 with sigmoid(-5): both right with p = sigmoid(5)
    loss = threshold_alignment([feats], [feats], masks, masks, torch.tensor(-10.0), 20.0, [1.0])
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-5)), rel=1e-3)
    nothing = torch.cat([torch.ones_like(fg), torch.zeros_like(fg)], dim=1)
    assert threshold_alignment([feats], [feats], nothing, masks, torch.tensor(-10.0), 20.0, [1.0]).item() == 0


def _qnet(maps, strides, **options):
    from fewshotkit_threshold.qnet import QNetMethod

    method = QNetMethod(FixedLevels(maps, strides), hidden=1, init_threshold=-10.0, **options)
    return method.eval()


def test_qnet_fuses_the_levels_point_nine_point_one():
    # support foreground: the left half. Fine level (2 x 2): left column e_0, right e_1, so the
    # prototype is ~e_0 and the query's right column has cos 0. Deep level (1 x 1): one vector, cos 1.
    fine = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])
    deep = torch.tensor([[[1.0]], [[1.0]]])
    fg = torch.zeros(4, 4)
    fg[:, :2] = 1
    with torch.no_grad():
        out = _qnet([fine, deep], [2, 4], refine_steps=0)(one_way_episode(fg)).logits.exp()[0, 0]
    p_deep = sigmoid(5)
    corner_left, corner_right = out[1, 0, 0].item(), out[1, 0, 3].item()  # aligned corners: exact level values
    # the prototype: the fine map upsampled to 4 x 4 is, per row, e_0 weights [1, 0.75, 0.25, 0], so
    # under the left half (1 + 0.75) / 2 = 0.875 of e_0 and 0.125 of e_1
    proto = pool_upsampled(fine[None], fg[None, None])[0]
    assert proto.tolist() == pytest.approx([0.875, 0.125], abs=1e-5)
    cos_left, cos_right = 0.875 / math.hypot(0.875, 0.125), 0.125 / math.hypot(0.875, 0.125)
    assert corner_left == pytest.approx(0.9 * sigmoid(0.5 * (20 * cos_left - 10)) + 0.1 * p_deep, abs=1e-5)
    assert corner_right == pytest.approx(0.9 * sigmoid(0.5 * (20 * cos_right - 10)) + 0.1 * p_deep, abs=1e-5)
    with torch.no_grad():
        only_fine = _qnet([fine, deep], [2, 4], refine_steps=0, alpha=1.0)(one_way_episode(fg)).logits.exp()
    assert only_fine[0, 0, 1, 0, 3].item() == pytest.approx(sigmoid(0.5 * (20 * cos_right - 10)), abs=1e-5)


def _reference_refinement_gradient(feats: torch.Tensor, proto: torch.Tensor) -> torch.Tensor:
    """d/dp of Q-Net's refinement loss for one query (1, C, h, w) and its prototype (1, C), T = -10:
    BCE(sigmoid(minmax(f)), sigmoid(minmax(f with the predicted foreground replaced by p)))."""
    def min_max(x: torch.Tensor) -> torch.Tensor:
        return (x - x.min()) / (x.max() - x.min())

    p = proto.clone().requires_grad_(True)
    cos = F.cosine_similarity(feats[0], proto[0].view(-1, 1, 1), dim=0)  # (h, w)
    fg = (torch.sigmoid(0.5 * (20 * cos - 10)) > 0.5).to(feats.dtype)
    rebuilt = feats[0] * (1 - fg) + p[0].view(-1, 1, 1) * fg
    x, y = torch.sigmoid(min_max(feats[0])), torch.sigmoid(min_max(rebuilt))
    (-(y * x.log() + (1 - y) * (1 - x).log()).mean()).backward()
    assert p.grad is not None
    return p.grad[None]


def test_qnet_refinement_takes_adam_steps_of_the_learning_rate_through_the_target():
    torch.manual_seed(0)
    feats = torch.randn(1, 4, 3, 3)
    proto = feats[0, :, 0, 0:1].T.clone()  # (1, 4): the first pixel is foreground
    t = torch.tensor([-10.0])
    assert torch.equal(refine_prototypes_bce(feats, proto, t, 20.0, 0, 0.01), proto[None])
    one = refine_prototypes_bce(feats, proto, t, 20.0, 1, 0.01)
    moved = (one - proto[None]).abs()
    assert (moved > 0).all()
    assert torch.allclose(moved, torch.full_like(moved, 0.01), atol=1e-5)  # Adam's 1st step: lr sign(-grad)
    # the direction: against the gradient of Q-Net's BCE, through its target only
    assert torch.equal(torch.sign(one - proto[None]), -torch.sign(_reference_refinement_gradient(feats, proto)))
    seven = refine_prototypes_bce(feats, proto, t, 20.0, 7, 0.01)
    assert (seven - proto[None]).abs().max() <= 0.07 + 1e-5
    with torch.inference_mode():  # as the evaluation runs it
        assert torch.equal(refine_prototypes_bce(feats, proto, t, 20.0, 1, 0.01), one)
    # queries refined together = one by one
    other = torch.randn(1, 4, 3, 3)
    both = refine_prototypes_bce(torch.cat([feats, other]), proto, t.repeat(2), 20.0, 7, 0.01)
    assert torch.allclose(both[0], seven[0], atol=1e-6)
    assert torch.allclose(both[1], refine_prototypes_bce(other, proto, t, 20.0, 7, 0.01)[0], atol=1e-6)


def test_qnet_needs_two_levels_and_says_so():
    from fewshotkit_threshold.qnet import QNetMethod

    with pytest.raises(FewshotkitError, match=r"1 feature level\(s\).*backbone.levels=2"):
        QNetMethod(FixedLevels([torch.ones(2, 1, 1)], [8]))


# -- RPT -------------------------------------------------------------------------------------------
def test_rpt_regions_by_farthest_points_and_voronoi():
    from fewshotkit_threshold.rpt import partition_prototypes

    feats = torch.arange(4.0).view(1, 1, 4)  # one channel, a 1 x 4 line: 0 1 2 3
    # centres: x=1 (nearest the centroid 1.5, ties: the lowest index), then x=3 (farthest from 1);
    # pixels 0, 1, 2 join x=1 (2 is equidistant: the first centre), pixel 3 its own: means 1 and 3
    protos = partition_prototypes(feats, torch.ones(1, 4), regions=2, strict=True)
    assert protos.flatten().tolist() == [1.0, 3.0]
    assert partition_prototypes(feats, torch.zeros(1, 4), 2, strict=True).shape == (0, 1)  # empty: none
    one = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    assert partition_prototypes(feats, one, 2, strict=False).flatten().tolist() == [2.0]  # training: per pixel
    with pytest.raises(FewshotkitError, match=r"options.regions' = 2 is larger than the support's 1 foreground") as e:
        partition_prototypes(feats, one, 2, strict=True)
    assert "\n" not in str(e.value)


def test_rpt_search_and_weight_by_hand():
    from fewshotkit_threshold.bat import search_and_weight

    regions = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]])
    query = torch.tensor([[3.0, 0.0]])
    # A = (3, 0, 6); cut = floor((0 + 3) / 2) = 1, so region 2 (A = 0 < 1) is suppressed;
    # a = softmax(3, -inf, 6) = (1 / (1 + e^3), 0, e^3 / (1 + e^3)); out = P_i + a_i q
    a0, a2 = 1 / (1 + math.exp(3)), math.exp(3) / (1 + math.exp(3))
    out = search_and_weight(regions, query)[0]
    assert torch.allclose(out, torch.tensor([[1 + 3 * a0, 0.0], [0.0, 1.0], [2 + 3 * a2, 0.0]]), atol=1e-6)
    # A = (1, 1.2, 4.6): (min + mean) / 2 = 1.63, floored to 1, so 1.2 (and 1, not below the cut)
    # keep their weight, which the unfloored cut 1.63 would take away
    regions = torch.tensor([[[1.0, 0.0], [1.2, 1.0], [4.6, 0.0]]])
    a = torch.tensor([1.0, 1.2, 4.6]).softmax(dim=0)
    out = search_and_weight(regions, torch.tensor([[1.0, 0.0]]))[0]
    assert torch.allclose(out, regions[0] + a.view(3, 1) * torch.tensor([1.0, 0.0]), atol=1e-6)
    assert a[1] > 0.02  # a real share, not a suppressed one's e^-10000


class _Unchanged(torch.nn.Module):
    def forward(self, regions: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return regions


def test_rpt_fused_prototype_is_the_mean_region_plus_the_global_one():
    from fewshotkit_threshold.rpt import RPTMethod

    fine = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]]).repeat(2, 1, 1)  # two channels, the 1 x 4 line
    method = RPTMethod(FixedLevels([fine, fine[:, :, :1]], [1, 4]), regions=2, hidden=1, init_threshold=-10.0)
    method.bat = _Unchanged()  # pin the fusion: BaT as the identity
    mask = torch.ones(1, 1, 4)
    glob = torch.tensor([5.0, 5.0])
    fused = method.eval().class_prototype(fine[None], mask, glob, fine[None], torch.tensor([-10.0]))
    assert fused.tolist() == [[2.0 + 5.0, 2.0 + 5.0]]  # mean of the regions (1, 3) + g


def test_rpt_periphery_ring_and_loss_by_hand():
    from fewshotkit_threshold.rpt_losses import dilate, periphery_loss

    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 2, 2] = 1
    assert dilate(mask)[0, 0, 1:4, 1:4].sum().item() == 9 and dilate(mask).sum().item() == 9
    # the object pixel is e_0, its ring e_1, the rest e_2: the object's prototype is e_0 and the
    # dilated one (e_0 + 8 e_1) / 9. On the ring p_ring = p_grown - p_obj = sigmoid(0.5 (20 * 8 /
    # sqrt(65) - 10)) - sigmoid(-5) > 0; on the object it is negative (1 - p_ring clamped to 1 - eps);
    # elsewhere both are sigmoid(-5): p_ring = 0. The swapped difference would cost -log(eps) per ring pixel.
    feats = torch.zeros(1, 3, 5, 5)
    feats[0, 2] = 1
    feats[0, :, 1:4, 1:4] = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    feats[0, :, 2, 2] = torch.tensor([1.0, 0.0, 0.0])
    masks = torch.cat([1 - mask, mask], dim=1)
    loss = periphery_loss(feats, masks, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor(-10.0), 20.0)
    p_ring = sigmoid(0.5 * (20 * 8 / math.sqrt(65) - 10)) - sigmoid(-5)
    assert p_ring > 0.98
    expected = (8 * -math.log(p_ring) + 17 * -PROB_LOG[1]) / 25
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert loss.item() < 0.01  # the swapped difference: > 8 * 15.9 / 25


def test_rpt_prototype_and_self_query_losses_by_hand():
    from fewshotkit_threshold.rpt_losses import prototype_loss, self_query_loss

    query = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1).expand(1, 2, 3, 3).contiguous()
    predicted = torch.zeros(1, 2, 3, 3)
    predicted[:, 1, 0, 0], predicted[:, 0] = 1, 1
    predicted[:, 0, 0, 0] = 0
    support = torch.zeros(2, 2)
    assert prototype_loss(query, predicted, support).item() == pytest.approx((1 + 4) / 2, rel=1e-4)  # MSE to 0
    assert prototype_loss(query, torch.cat([torch.ones(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)], 1), support) == 0
    # the query's own labelled pixels are e_0, the rest e_1: every pixel is right with p = sigmoid(5)
    feats = torch.zeros(1, 2, 3, 3)
    labels = torch.zeros(1, 3, 3, dtype=torch.long)
    labels[0, :2, :2] = 1
    feats[0, 0][labels[0] == 1], feats[0, 1][labels[0] == 0] = 1.0, 1.0
    own = torch.stack([labels == 0, labels == 1], dim=1).float()
    loss = self_query_loss(feats, own, labels, torch.tensor([-10.0]), 20.0)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-5)), rel=1e-4)


# -- GMRD ------------------------------------------------------------------------------------------
def test_gmrd_fills_the_outside_from_the_inside_in_raster_order():
    from fewshotkit_threshold.gmrd_parts import fill_outside

    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 2)
    mask = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # inside pixels 2 and 3; outside pixel 0 takes the first, outside pixel 3 the second
    assert fill_outside(feats, mask).flatten().tolist() == [2.0, 2.0, 3.0, 3.0]
    assert fill_outside(feats, torch.zeros(2, 2)).abs().sum() == 0


def test_gmrd_global_and_edge_descriptors_by_hand():
    from fewshotkit_threshold.gmrd import GMRDMethod

    cols = torch.arange(8.0).view(1, 1, 8).expand(1, 8, 8)  # feature = the column index
    method = GMRDMethod(FixedLevels([cols], [1]), fg_descriptors=3, bg_descriptors=5, grid=8).eval()
    fg = torch.zeros(8, 8)
    fg[:, :4] = 1
    bg_desc, fg_desc = method.class_descriptors(cols[None], torch.stack([1 - fg, fg])[None])
    assert fg_desc.shape == (3 + 2, 1) and bg_desc.shape == (5 + 2, 1)
    # foreground columns 0-3: global 1.5; eroding twice (3 x 3, the border counts as set) leaves
    # columns 0-1, so the inner edge is columns 2-3: 2.5. Background columns 4-7: global 5.5; the
    # ring dilate(fg, twice) - fg is columns 4-5 only: 4.5
    assert fg_desc[-2:].flatten().tolist() == pytest.approx([1.5, 2.5], abs=1e-4)
    assert bg_desc[-2:].flatten().tolist() == pytest.approx([5.5, 4.5], abs=1e-4)


def test_gmrd_descriptor_loss_by_hand():
    from fewshotkit_threshold.gmrd_parts import descriptor_loss

    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    fg, bg = torch.tensor([e0, e0, e0]), torch.tensor([e1, e1, e1])
    assert descriptor_loss(fg, fg, bg, bg).item() == pytest.approx(0.0, abs=1e-6)
    # the query's learned fg descriptor is e_1: its match is 0, the global and edge ones 1, so
    # m_fg = 2 / 3 and intra = 1 / 3; the query's fg and bg overlap by mean cos = 1 / 3
    query_fg = torch.tensor([e1, e0, e0])
    assert descriptor_loss(fg, query_fg, bg, bg).item() == pytest.approx(1 / 3 + 1 / 3, abs=1e-6)
    # three learned descriptors: the support's e_0, e_1, e_2 best match the query's (e_0, e_0, e_1)
    # with 1, 1, 0 (the query's side would give 1, 1, 1; means 2/3, 1/3, 0), global and edge 1:
    # m_fg = 4 / 5. The background is the same on both sides (m_bg = 1) and mostly -e_0, so the mean
    # cosines of fg and bg are -11 / 25 (support) and -15 / 25 (query), clamped to 0; their maxima are 1.
    e0, e1, e2 = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    support_fg, query_fg = torch.tensor([e0, e1, e2, e0, e0]), torch.tensor([e0, e0, e1, e0, e0])
    bg = torch.tensor([[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], e1, [-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    assert descriptor_loss(support_fg, query_fg, bg, bg).item() == pytest.approx(2 - 4 / 5 - 1, abs=1e-6)


class _FirstMap(torch.nn.Module):
    def forward(self, similarity: torch.Tensor) -> torch.Tensor:
        return similarity[:, :1]


def test_gmrd_decodes_similarities_into_a_softmax_over_background_and_classes():
    from fewshotkit_threshold.gmrd import GMRDMethod
    from fewshotkit_threshold.gmrd_parts import similarity

    feats = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    assert similarity(feats, torch.tensor([[1.0, 1.0], [0.0, 2.0]])).flatten().tolist() == \
        pytest.approx([1 / math.sqrt(2), 0.0])  # plain cosine, no scale
    method = GMRDMethod(FixedLevels([torch.ones(2, 1, 1)], [1]), fg_descriptors=1, bg_descriptors=1, grid=2)
    method.fg_decoder, method.bg_decoder = _FirstMap(), _FirstMap()  # a decoder reading its first descriptor
    bg, fg = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 1.0]])
    log_probs = method.segment(feats, [bg, fg], torch.Size([1, 1]))
    # logits (cos to bg, cos to fg) = (0, 1 / sqrt 2): p_fg = sigmoid(1 / sqrt 2)
    assert log_probs.exp()[0, :, 0, 0].tolist() == pytest.approx([1 - sigmoid(2 ** -0.5), sigmoid(2 ** -0.5)])
