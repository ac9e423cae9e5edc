"""Hand-computed checks of the prototype math: ALP, masked average, Eq. 5 fusion, edge cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshotkit.method.composed import cosine_scores, masked_average
from fewshotkit_alp.classifier import CosineSoftmaxClassifier
from fewshotkit_alp.pooling import ALPPooler, alp_local
from fewshotkit_panet.parts import CosineClassifier, MaskedAvgPooler


def _hand_case():
    """features (1, 2, 4, 4) with f[0] = 0..15 row-major, f[1] = 1; fg = top-left 2x2 + pixel (3, 3)."""
    f = torch.stack([torch.arange(16.0).view(4, 4), torch.ones(4, 4)]).unsqueeze(0)
    fg = torch.zeros(4, 4)
    fg[:2, :2] = 1
    fg[3, 3] = 1
    masks = torch.stack([1 - fg, fg]).unsqueeze(0)  # (1, 2, 4, 4)
    return f, masks


def test_alp_prototypes_by_hand():
    f, masks = _hand_case()
    pooler = ALPPooler(train_window=2, test_window=2).eval()
    bg, fg = pooler(f, masks)
    # windows (row-major): TL mean of 0,1,4,5 = 2.5 (fg cover 1); TR mean 2,3,6,7 = 4.5 (bg cover 1);
    # BL mean 8,9,12,13 = 10.5 (bg cover 1); BR 10,11,14,15 = 12.5 (bg cover 0.75: rejected)
    assert torch.allclose(bg, torch.tensor([[4.5, 1.0], [10.5, 1.0]]))
    # fg: the TL local prototype, then the global masked average of 0,1,4,5,15 = 25/5
    expected_global = torch.tensor([25.0, 5.0]) / (5 + 1e-5)
    assert torch.allclose(fg, torch.stack([torch.tensor([2.5, 1.0]), expected_global]))


def test_alp_local_only_and_window_switch():
    f, masks = _hand_case()
    bg, fg = alp_local(train_window=4, test_window=2).eval()(f, masks)
    assert torch.allclose(fg, torch.tensor([[2.5, 1.0]]))
    assert bg.shape == (2, 2)
    pooler = ALPPooler(train_window=4, test_window=2).train()
    # one 4x4 window: bg cover 11/16 and fg cover 5/16 -> no local prototype passes; fallbacks
    bg, fg = pooler(f, masks)
    assert bg.shape == (1, 2) and fg.shape == (1, 2)
    bg_global = (f[0] * masks[0, 0]).sum(dim=(1, 2)) / (masks[0, 0].sum() + 1e-5)
    assert torch.allclose(bg[0], bg_global)


def test_alp_pools_all_shots():
    f, masks = _hand_case()
    f2, masks2 = torch.cat([f, f + 100]), torch.cat([masks, masks])
    bg, fg = ALPPooler(window=2).eval()(f2, masks2)
    assert bg.shape == (4, 2) and fg.shape == (3, 2)  # 2 local fg + 1 global over both shots
    assert torch.allclose(fg[1], torch.tensor([102.5, 101.0]))


def test_masks_are_resized_to_features():
    f, masks = _hand_case()
    big = masks.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # (1, 2, 8, 8)
    for pooler in (ALPPooler(window=2).eval(), MaskedAvgPooler()):
        for a, b in zip(pooler(f, big), pooler(f, masks)):
            assert torch.allclose(a, b)


def test_masked_average_is_mean_under_mask():
    torch.manual_seed(0)
    f = torch.randn(3, 5, 6, 6)
    fg = (torch.rand(3, 6, 6) > 0.6).float()
    masks = torch.stack([1 - fg, fg], dim=1)
    bg_p, fg_p = MaskedAvgPooler()(f, masks)
    sel = f.permute(0, 2, 3, 1)[fg.bool()]  # (n, C)
    assert torch.allclose(fg_p[0], sel.mean(dim=0), atol=1e-5)
    assert torch.allclose(masked_average(f, masks)[0], f.permute(0, 2, 3, 1)[~fg.bool()].mean(0), atol=1e-5)


def test_eq5_fusion_matches_direct_computation():
    torch.manual_seed(1)
    q = torch.randn(2, 4, 3, 3)
    protos = [torch.randn(3, 4), torch.randn(1, 4), torch.randn(5, 4)]
    logits = CosineSoftmaxClassifier(scale=20.0)(q, protos)
    assert logits.shape == (2, 3, 3, 3)
    for n in range(2):
        for i in range(3):
            for j in range(3):
                v = q[n, :, i, j]
                for c, p in enumerate(protos):
                    s = torch.tensor([20.0 * F.cosine_similarity(v, pk, dim=0) for pk in p])
                    expected = (torch.softmax(s, 0) * s).sum()
                    assert torch.allclose(logits[n, c, i, j], expected, atol=1e-4)


def test_cosine_classifier_is_scaled_cosine():
    torch.manual_seed(2)
    q = torch.randn(1, 4, 2, 2)
    protos = [torch.randn(1, 4), torch.randn(1, 4)]
    logits = CosineClassifier()(q, protos)
    direct = 20 * F.cosine_similarity(q, protos[1].view(1, 4, 1, 1), dim=1)
    assert torch.allclose(logits[:, 1], direct, atol=1e-5)
    assert torch.allclose(cosine_scores(q, protos[1], 20.0)[:, 0], direct, atol=1e-5)


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("pooler", [ALPPooler(), alp_local(), MaskedAvgPooler()], ids=["alp", "alp-local", "masked-avg"])
def test_all_foreground_or_background_support(pooler, fill):
    torch.manual_seed(3)
    f = torch.randn(1, 8, 8, 8)
    fg = torch.full((1, 1, 32, 32), fill)
    masks = torch.cat([1 - fg, fg], dim=1)
    for mode in (True, False):
        protos = pooler.train(mode)(f, masks)
        assert len(protos) == 2 and all(p.shape[0] >= 1 and torch.isfinite(p).all() for p in protos)
        for clf in (CosineSoftmaxClassifier(), CosineClassifier()):
            assert torch.isfinite(clf(f, protos)).all()
