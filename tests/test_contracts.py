"""Contract tests parametrised over the registries: every registered component honours its interface.

A component registered later (by any plugin) is picked up automatically. Components are built with
their default options; composed methods get a small light backbone so the tests stay fast.
"""

from __future__ import annotations


import pytest
import torch

from fewshotkit.host.conformance import (
    MASK_CASES,
    check_backbone,
    check_classifier,
    check_pooler,
    check_postprocessor,
    check_pseudolabeler,
    one_hot_masks,
)
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.method import Episode, Method, MethodOutput
from fewshotkit.host.plugin_host import PluginHost
from fewshotkit.method.spec import PART_KINDS, MethodSpec
from fewshotkit.method.build import _method_part_params, build_method

REGISTRY = PluginHost().registry  # entry points only, independent of the process-wide host
SMALL_PARTS = {
    "backbone": {"type": "light", "width": 8, "out_channels": 16, "levels": 2},  # two levels for dual-scale methods
    "pooler": {"type": "alp"},
    "classifier": {"type": "cosine-softmax"},
}


def _names(kind: str) -> list[str]:
    return REGISTRY.names(kind)


@pytest.mark.parametrize("name", _names("backbone"))
def test_backbone_contract(name: str):
    check_backbone(REGISTRY.create("backbone", name))


@pytest.mark.parametrize("name", [n for n in _names("backbone") if "levels" in REGISTRY.get("backbone", n).options()])
def test_backbone_contract_with_two_levels(name: str):
    backbone = REGISTRY.create("backbone", name, levels=2)
    assert len(backbone.feature_levels()) == 2
    check_backbone(backbone)


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("name", _names("pooler"))
def test_pooler_contract(name: str, case: str):
    check_pooler(REGISTRY.create("pooler", name), case)


@pytest.mark.parametrize("name", _names("classifier"))
def test_classifier_contract(name: str):
    check_classifier(REGISTRY.create("classifier", name))


@pytest.mark.parametrize("classifier", _names("classifier"))
@pytest.mark.parametrize("pooler", _names("pooler"))
def test_every_pooler_feeds_every_classifier(pooler: str, classifier: str):
    feats = torch.randn(2, 16, 8, 8)
    clf = REGISTRY.create("classifier", classifier)
    clf.setup(16)
    ways = min(2, clf.max_ways or 2)
    protos = REGISTRY.create("pooler", pooler)(feats, one_hot_masks("random", (2, 32, 32), ways))
    assert clf(feats[:1], protos).shape == (1, ways + 1, 8, 8)


@pytest.mark.parametrize("name", _names("pseudolabeler"))
def test_pseudolabeler_contract(name: str):
    from fewshotkit.data.ingest.synthetic import phantom

    check_pseudolabeler(REGISTRY.create("pseudolabeler", name), phantom(0, 0, 8, 64)[0])  # spacing 5 x 2.5 x 2.5 mm


def _small_method(name: str) -> Method:
    part_params = _method_part_params(REGISTRY.get("method", name).load())
    parts = {k: dict(SMALL_PARTS[k]) for k in part_params if k in PART_KINDS}
    return build_method(MethodSpec(method=name, parts=parts, options={}))


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("name", _names("method"))
def test_method_contract(name: str, case: str, fresh_host):
    torch.manual_seed(0)
    method = _small_method(name)
    assert isinstance(method, Method)
    B, S, Q, N, H, W = 2, 2, 1, 2, 32, 32
    episode = Episode(
        support_images=torch.randn(B, S, 1, H, W),
        support_masks=one_hot_masks(case, (B, S, H, W), N, seed=1),
        query_images=torch.randn(B, Q, 1, H, W),
        query_labels=one_hot_masks("random", (B, Q, H, W), N, seed=2).argmax(dim=-3),
    )
    out = method.train()(episode)
    assert isinstance(out, MethodOutput)
    assert out.logits.shape == (B, Q, N + 1, H, W) and out.logits.dtype == torch.float32
    assert torch.isfinite(out.logits).all()
    assert out.losses, "training mode with query labels must return loss terms"
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.losses.values())
    out.loss.backward()
    params = [p for p in method.parameters() if p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    if hasattr(method, "backbone"):  # gradients reach the backbone of composed methods
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.backbone.parameters())
    method.eval()
    if case == "tiny" and getattr(method, "regions", 1) > 1:  # a support smaller than the region count is refused
        with pytest.raises(FewshotkitError, match="larger than the support's 1 foreground pixels"), torch.no_grad():
            method(Episode(episode.support_images, episode.support_masks, episode.query_images))
        return
    with torch.no_grad():
        inference = method(Episode(episode.support_images, episode.support_masks, episode.query_images))
    assert inference.logits.shape == (B, Q, N + 1, H, W) and torch.isfinite(inference.logits).all()
    assert not inference.losses


@pytest.mark.parametrize("name", _names("postprocessor"))
def test_postprocessor_contract(name: str):
    check_postprocessor(REGISTRY.create("postprocessor", name))
