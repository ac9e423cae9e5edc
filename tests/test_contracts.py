"""Contract tests parametrised over the registries: every registered component honours its interface.

A component registered later (by any plugin) is picked up automatically. Components are built with
their default options; composed methods get a small light backbone so the tests stay fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.classifier import Classifier
from fewshotkit.interfaces.method import Episode, Method, MethodOutput
from fewshotkit.interfaces.pooler import PrototypePooler
from fewshotkit.interfaces.postprocessor import Postprocessor
from fewshotkit.host.plugin_host import PluginHost
from fewshotkit.method.spec import PART_KINDS, MethodSpec, _method_part_params, build_method

REGISTRY = PluginHost().registry  # entry points only, independent of the process-wide host
SMALL_PARTS = {
    "backbone": {"type": "light", "width": 8, "out_channels": 16},
    "pooler": {"type": "alp"},
    "classifier": {"type": "cosine-softmax"},
}
MASK_CASES = ("empty", "tiny", "full", "random")


def _names(kind: str) -> list[str]:
    return REGISTRY.names(kind)


def _masks(case: str, shape: tuple[int, ...], ways: int = 1, seed: int = 0) -> torch.Tensor:
    """(..., N + 1, H, W) one-hot masks; ``shape`` is (..., H, W)."""
    g = torch.Generator().manual_seed(seed)
    *lead, H, W = shape
    labels = torch.zeros(*lead, H, W, dtype=torch.long)
    if case == "tiny":
        labels[..., H // 2, W // 2] = 1
    elif case == "full":
        labels[...] = ways
    elif case == "random":
        labels = torch.randint(0, ways + 1, (*lead, H, W), generator=g)
        labels[..., : H // 2, : W // 2] = 1 % (ways + 1)
    onehot = torch.nn.functional.one_hot(labels, ways + 1).movedim(-1, -3).float()
    return onehot


@pytest.mark.parametrize("name", _names("backbone"))
def test_backbone_contract(name: str):
    torch.manual_seed(0)
    bb = REGISTRY.create("backbone", name)
    assert isinstance(bb, Backbone)
    assert bb.in_channels in (1, 3) and bb.out_channels >= 1 and bb.stride >= 1
    images = torch.randn(3, 1, 64, 48)  # slices are 1-channel; prepare() adapts them
    x = bb.prepare(images)
    assert x.shape == (3, bb.in_channels, 64, 48)
    feats = bb.train()(x)
    assert feats.dtype == torch.float32
    assert feats.shape == (3, bb.out_channels, math.ceil(64 / bb.stride), math.ceil(48 / bb.stride))
    assert torch.isfinite(feats).all()
    feats.square().mean().backward()
    grads = [p.grad for p in bb.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads[:1] + grads[-1:])
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


@pytest.mark.parametrize("case", MASK_CASES)
@pytest.mark.parametrize("name", _names("pooler"))
def test_pooler_contract(name: str, case: str):
    torch.manual_seed(0)
    pooler = REGISTRY.create("pooler", name)
    assert isinstance(pooler, PrototypePooler)
    for shots, ways in ((1, 1), (3, 2)):
        feats = torch.randn(shots, 16, 8, 8, requires_grad=True)
        masks = _masks(case, (shots, 64, 64), ways)
        for training in (True, False):
            protos = pooler.train(training)(feats, masks)
            assert isinstance(protos, list) and len(protos) == ways + 1
            for p in protos:
                assert p.ndim == 2 and p.shape[0] >= 1 and p.shape[1] == 16
                assert p.dtype == torch.float32 and torch.isfinite(p).all()
        total = sum(p.sum() for p in protos)
        (grad,) = torch.autograd.grad(total, feats)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("name", _names("classifier"))
def test_classifier_contract(name: str):
    torch.manual_seed(0)
    clf = REGISTRY.create("classifier", name)
    assert isinstance(clf, Classifier)
    clf.setup(16)
    ways = min(2, clf.max_ways or 2)  # a classifier may be limited to fewer ways (max_ways)
    feats = torch.randn(2, 16, 8, 6, requires_grad=True)
    protos = [torch.randn(4, 16, requires_grad=True), torch.randn(1, 16, requires_grad=True), torch.zeros(2, 16)]
    logits = clf(feats, protos[: ways + 1])
    assert logits.shape == (2, ways + 1, 8, 6) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.log_softmax(dim=1)[:, 1].mean().backward()
    assert feats.grad is not None and torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0
    grads = [p.grad for p in protos[:2] if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    if clf.max_ways is not None:
        with pytest.raises(FewshotkitError, match="foreground class"):
            clf(feats, [protos[1]] * (clf.max_ways + 2))


@pytest.mark.parametrize("classifier", _names("classifier"))
@pytest.mark.parametrize("pooler", _names("pooler"))
def test_every_pooler_feeds_every_classifier(pooler: str, classifier: str):
    feats = torch.randn(2, 16, 8, 8)
    clf = REGISTRY.create("classifier", classifier)
    clf.setup(16)
    ways = min(2, clf.max_ways or 2)
    protos = REGISTRY.create("pooler", pooler)(feats, _masks("random", (2, 32, 32), ways))
    assert clf(feats[:1], protos).shape == (1, ways + 1, 8, 8)


@pytest.mark.parametrize("name", _names("pseudolabeler"))
def test_pseudolabeler_contract(name: str):
    import pickle

    import numpy as np

    from fewshotkit.data.ingest.synthetic import phantom
    from fewshotkit.interfaces.pseudolabeler import PseudoLabeler

    labeler = REGISTRY.create("pseudolabeler", name)
    assert isinstance(labeler, PseudoLabeler) and labeler.ndim in (2, 3)
    assert isinstance(labeler.params(), dict)
    labeler = pickle.loads(pickle.dumps(labeler))  # it runs in worker processes
    volume = phantom(0, 0, 8, 64)[0]  # float32 (8, 64, 64), spacing 5 x 2.5 x 2.5 mm
    before = volume.copy()
    if labeler.ndim == 3:  # ids per volume
        inputs, outputs = [volume], [labeler(volume, (5.0, 2.5, 2.5)), labeler(volume, (5.0, 2.5, 2.5))]
    else:  # ids per slice
        inputs, outputs = list(volume), [labeler(s) for s in volume] + [labeler(volume[3])]
    assert np.array_equal(volume, before), "the input must not be modified"
    assert np.array_equal(outputs[-1], outputs[3 if labeler.ndim == 2 else 0]), "pseudolabels must be deterministic"
    for image, labels in zip(inputs, outputs):
        assert isinstance(labels, np.ndarray) and labels.dtype == np.int32 and labels.shape == image.shape
        ids = np.unique(labels)
        assert ids.min() >= 0 and np.array_equal(ids[ids > 0], np.arange(1, int(ids.max()) + 1)) and ids.max() >= 1


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
        support_masks=_masks(case, (B, S, H, W), N, seed=1),
        query_images=torch.randn(B, Q, 1, H, W),
        query_labels=_masks("random", (B, Q, H, W), N, seed=2).argmax(dim=-3),
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
    with torch.no_grad():
        inference = method(Episode(episode.support_images, episode.support_masks, episode.query_images))
    assert inference.logits.shape == (B, Q, N + 1, H, W) and torch.isfinite(inference.logits).all()
    assert not inference.losses


def _blobs(seed: int = 0) -> np.ndarray:
    """A (12, 24, 24) bool mask: a large ball, a small separate blob, an isolated voxel and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:12, :24, :24]
    mask = (z - 5) ** 2 / 9 + (y - 10) ** 2 / 36 + (x - 10) ** 2 / 36 <= 1
    mask[10:12, 20:23, 20:23] = True
    mask[0, 0, 23] = True
    return mask | (rng.random(mask.shape) > 0.97)


@pytest.mark.parametrize("name", _names("postprocessor"))
def test_postprocessor_contract(name: str):
    post = REGISTRY.create("postprocessor", name)
    assert isinstance(post, Postprocessor)
    mask = _blobs()
    before = mask.copy()
    # a support-aware one is given a support scan of another size, as eval passes it
    extra = {"support": _blobs(seed=1)[:9, :20]} if post.uses_support else {}
    for spacing in (None, (5.0, 1.5, 1.5)):
        out = post(mask, spacing, **extra)
        assert isinstance(out, np.ndarray) and out.shape == mask.shape and out.dtype == bool
        assert np.array_equal(mask, before), "the input must not be modified"
        assert np.array_equal(post(out, spacing, **extra), out), "post-processing must be idempotent"
        assert np.array_equal(post(mask, spacing, **extra), out), "post-processing must be deterministic"
        assert not post(np.zeros_like(mask), spacing, **extra).any(), "an empty prediction stays empty"
