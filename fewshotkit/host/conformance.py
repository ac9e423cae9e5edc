"""The contract tests of each component kind, as functions a plugin's own test suite can call.

``check_component(kind, component)`` builds small inputs, runs the component and asserts what its
interface promises (shapes, dtypes, finite values, gradients, determinism, idempotence); a broken
promise raises ``AssertionError`` with what was expected. fewshotkit's suite runs them over every
registered component (``tests/test_contracts.py``); a plugin made by ``fewshotkit plugins new``
runs them over its own.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, Callable

import numpy as np
import torch
from scipy import ndimage

from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.classifier import Classifier
from fewshotkit.interfaces.pooler import PrototypePooler
from fewshotkit.interfaces.postprocessor import Postprocessor
from fewshotkit.interfaces.pseudolabeler import PseudoLabeler

MASK_CASES = ("empty", "tiny", "full", "random")


def one_hot_masks(case: str, shape: tuple[int, ...], ways: int = 1, seed: int = 0) -> torch.Tensor:
    """(..., N + 1, H, W) float one-hot masks for ``shape`` (..., H, W): ``case`` is "empty" (all
    background), "tiny" (one foreground pixel), "full" (all class N) or "random"."""
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
    return torch.nn.functional.one_hot(labels, ways + 1).movedim(-1, -3).float()


def check_backbone(bb: Any) -> None:
    """A (3, 1, 64, 48) batch gives finite float32 features (3, C, ceil(64 / s), ceil(48 / s)) with
    the declared ``out_channels`` C and ``stride`` s, gradients from every feature level reach the
    parameters, and the levels match their declaration (:func:`check_levels`)."""
    torch.manual_seed(0)
    assert isinstance(bb, Backbone)
    assert bb.in_channels in (1, 3) and bb.out_channels >= 1 and bb.stride >= 1
    images = torch.randn(3, 1, 64, 48)  # slices are 1-channel; prepare() adapts them
    x = bb.prepare(images)
    assert x.shape == (3, bb.in_channels, 64, 48)
    feats = bb.train()(x)
    assert feats.dtype == torch.float32
    assert feats.shape == (3, bb.out_channels, math.ceil(64 / bb.stride), math.ceil(48 / bb.stride))
    assert torch.isfinite(feats).all()
    every_level = list(range(len(bb.feature_levels())))  # one level: forward's features
    torch.stack([f.square().mean() for f in bb.forward_levels(x, every_level)]).sum().backward()
    grads = [p.grad for p in bb.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads[:1] + grads[-1:])
    assert any(g.abs().sum() > 0 for g in grads if g is not None)
    check_levels(bb, x)


def check_levels(bb: Any, images: torch.Tensor) -> None:
    """``feature_levels()`` lists the levels finest first, the last being what ``forward`` returns;
    ``forward_levels`` hands out each at its declared stride and channels."""
    levels = bb.feature_levels()
    assert levels and [lv.stride for lv in levels] == sorted(lv.stride for lv in levels)
    assert (levels[-1].stride, levels[-1].channels) == (bb.stride, bb.out_channels)
    H, W = images.shape[-2:]
    with torch.no_grad():
        maps = bb.eval().forward_levels(images, list(range(len(levels))))
        assert torch.allclose(maps[-1], bb(images), atol=1e-5)
    for level, features in zip(levels, maps):
        assert features.shape == (images.shape[0], level.channels, math.ceil(H / level.stride),
                                  math.ceil(W / level.stride))


def check_pooler(pooler: Any, case: str = "random") -> None:
    """For 1-shot 1-way and 3-shot 2-way episodes with ``case`` masks, in training and evaluation
    mode: N + 1 finite float32 tensors (P_c, 16) with P_c >= 1, and gradients reach the features."""
    torch.manual_seed(0)
    assert isinstance(pooler, PrototypePooler)
    for shots, ways in ((1, 1), (3, 2)):
        feats = torch.randn(shots, 16, 8, 8, requires_grad=True)
        masks = one_hot_masks(case, (shots, 64, 64), ways)
        for training in (True, False):
            protos = pooler.train(training)(feats, masks)
            assert isinstance(protos, list) and len(protos) == ways + 1
            for p in protos:
                assert p.ndim == 2 and p.shape[0] >= 1 and p.shape[1] == 16
                assert p.dtype == torch.float32 and torch.isfinite(p).all()
        total = sum(p.sum() for p in protos)
        (grad,) = torch.autograd.grad(total, feats)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def check_classifier(clf: Any) -> None:
    """Features (2, 16, 8, 6) and N + 1 prototype sets give finite float32 logits (2, N + 1, 8, 6);
    gradients reach features and prototypes; more ways than ``max_ways`` is a one-line error."""
    from fewshotkit.core.errors import FewshotkitError

    torch.manual_seed(0)
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
        try:
            clf(feats, [protos[1]] * (clf.max_ways + 2))
        except FewshotkitError as exc:
            assert "foreground class" in str(exc)
        else:
            raise AssertionError(f"more than max_ways={clf.max_ways} foreground classes must raise FewshotkitError")


def sample_volume() -> np.ndarray:
    """A float32 (8, 64, 64) volume: a bright body with two darker organs and smooth noise."""
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[-1:1:8j, -1:1:64j, -1:1:64j]
    body = (y / 0.7) ** 2 + (x / 0.9) ** 2 <= 1
    organs = ((y + 0.2) / 0.3) ** 2 + ((x - 0.3) / 0.35) ** 2 + (z / 1.2) ** 2 <= 1
    organs |= ((y - 0.25) / 0.2) ** 2 + ((x + 0.4) / 0.2) ** 2 <= 1
    noise = ndimage.gaussian_filter(rng.standard_normal((8, 64, 64)), (0, 3, 3))
    volume = np.where(body, 600.0, 0.0) - np.where(organs & body, 250.0, 0.0) + 20.0 * noise * body
    return volume.astype(np.float32)


def check_pseudolabeler(labeler: Any, volume: np.ndarray | None = None) -> None:
    """On a (Z, H, W) ``volume`` (default :func:`sample_volume`, spacing 5 x 2.5 x 2.5 mm): picklable,
    input unchanged, deterministic, int32 ids of the input's shape numbered 1..K without gaps."""
    assert isinstance(labeler, PseudoLabeler) and labeler.ndim in (2, 3)
    assert isinstance(labeler.params(), dict)
    labeler = pickle.loads(pickle.dumps(labeler))  # it runs in worker processes
    volume = sample_volume() if volume is None else volume
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


def blobs(seed: int = 0) -> np.ndarray:
    """A (12, 24, 24) bool mask: a large ball, a small separate blob, an isolated voxel and noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:12, :24, :24]
    mask = (z - 5) ** 2 / 9 + (y - 10) ** 2 / 36 + (x - 10) ** 2 / 36 <= 1
    mask[10:12, 20:23, 20:23] = True
    mask[0, 0, 23] = True
    return mask | (rng.random(mask.shape) > 0.97)


def check_postprocessor(post: Any) -> None:
    """With and without a spacing: a bool mask of the input's shape, input unchanged, idempotent,
    deterministic, and an empty prediction stays empty (a support-aware one also gets a support)."""
    assert isinstance(post, Postprocessor)
    mask = blobs()
    before = mask.copy()
    # a support-aware one is given a support scan of another size, as eval passes it
    extra = {"support": blobs(seed=1)[:9, :20]} if post.uses_support else {}
    for spacing in (None, (5.0, 1.5, 1.5)):
        out = post(mask, spacing, **extra)
        assert isinstance(out, np.ndarray) and out.shape == mask.shape and out.dtype == bool
        assert np.array_equal(mask, before), "the input must not be modified"
        assert np.array_equal(post(out, spacing, **extra), out), "post-processing must be idempotent"
        assert np.array_equal(post(mask, spacing, **extra), out), "post-processing must be deterministic"
        assert not post(np.zeros_like(mask), spacing, **extra).any(), "an empty prediction stays empty"


def _check_pooler_every_case(pooler: Any) -> None:
    for case in MASK_CASES:
        check_pooler(pooler, case)


CHECKS: dict[str, Callable[[Any], None]] = {
    "backbone": check_backbone,
    "pooler": _check_pooler_every_case,
    "classifier": check_classifier,
    "pseudolabeler": check_pseudolabeler,
    "postprocessor": check_postprocessor,
}


def check_component(kind: str, component: Any) -> None:
    """Run the contract tests of ``kind`` (backbone, pooler, classifier, pseudolabeler or
    postprocessor) over ``component``; ``AssertionError`` when it breaks its interface."""
    if kind not in CHECKS:
        raise ValueError(f"no contract tests for kind '{kind}'; kinds: {', '.join(CHECKS)}")
    CHECKS[kind](component)
