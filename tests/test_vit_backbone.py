"""The ViT backbone (DINOv2 ViT-S/14 through timm, random weights) in composed methods: every
registered pooler and classifier trains on its patch-grid features (the backbone contract itself is
checked for it in test_contracts.py, over the live registry)."""

from __future__ import annotations

import pytest
import torch

from fewshotkit.host.plugin_host import PluginHost
from fewshotkit.interfaces.method import Episode
from fewshotkit.method.spec import MethodSpec
from fewshotkit.method.build import build_method

REGISTRY = PluginHost().registry
VIT = {"type": "vit", "out_channels": 16, "in_channels": 1}


@pytest.fixture(scope="module")
def vit_state() -> dict[str, torch.Tensor]:
    """One random ViT-S/14, shared by every method below (building one takes seconds on 2 cores)."""
    torch.manual_seed(0)
    return build_method(MethodSpec("composed", {"backbone": VIT, "pooler": {"type": "alp"},
                                                "classifier": {"type": "cosine-softmax"}}, {})).backbone.state_dict()


PAIRS = sorted({(p, "cosine-softmax") for p in REGISTRY.names("pooler")} | {("alp", c) for c in REGISTRY.names("classifier")})


@pytest.mark.parametrize(("pooler", "classifier"), PAIRS)
def test_every_pooler_and_classifier_trains_on_vit_features(pooler: str, classifier: str, vit_state):
    method = build_method(MethodSpec("composed", {"backbone": VIT, "pooler": {"type": pooler},
                                                  "classifier": {"type": classifier}}, {}))
    method.backbone.load_state_dict(vit_state)
    assert method.backbone.stride == 14
    size = 56  # a 4 x 4 patch grid
    fg = torch.zeros(1, 1, 1, size, size)
    fg[..., 14:42, 14:42] = 1
    episode = Episode(torch.randn(1, 1, 1, size, size), torch.cat([1 - fg, fg], dim=2),
                      torch.randn(1, 1, 1, size, size), fg[:, :, 0].long())
    out = method.train()(episode)
    assert out.logits.shape == (1, 1, 2, size, size) and torch.isfinite(out.logits).all()
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.backbone.body.parameters())
