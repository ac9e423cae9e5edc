"""Known-answer checks of the threshold methods (ADNet, Q-Net, regional prototypes) and their errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import pseudolabelled_store
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.method import Episode
from fewshotkit_threshold.classifiers import QueryThresholdClassifier, ThresholdClassifier, threshold_logits
from fewshotkit_threshold.regional import RegionalPooler, farthest_points, region_prototypes

THRESHOLD_PRESETS = ("ssl-adnet-cpu", "ssl-qnet-single-cpu", "ssl-regional-cpu")
TINY = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
        "training.log_every=2", "training.checkpoint_every=100", "training.batch_size=2"]


def tiny_method(preset: str, *extra: str):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    torch.manual_seed(0)
    return build_method(apply_overrides(preset_spec(preset), [*TINY, *extra]))


def _features_at_cosines(cosines: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Query features (1, 2, 1, n) whose cosine to the prototype (1, 2) = e_0 is ``cosines``."""
    c = torch.tensor(cosines)
    feats = torch.stack([c, torch.sqrt(1 - c**2)]).view(1, 2, 1, -1)
    return feats, torch.tensor([[1.0, 0.0]])


def _fg_probability(clf, feats: torch.Tensor, proto: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return clf(feats, [torch.zeros(1, feats.shape[1]), proto]).softmax(dim=1)[0, 1, 0]


def _episode(shots: int = 1, ways: int = 1, size: int = 32, seed: int = 0) -> Episode:
    g = torch.Generator().manual_seed(seed)
    fg = torch.zeros(1, shots, size, size)
    fg[..., 8:20, 10:24] = 1
    masks = torch.cat([1 - fg, fg] + [torch.zeros_like(fg)] * (ways - 1), dim=0).permute(1, 0, 2, 3)[None]
    labels = torch.zeros(1, 1, size, size, dtype=torch.long)
    labels[..., 10:22, 8:20] = 1
    return Episode(torch.randn(1, shots, 1, size, size, generator=g), masks,
                   torch.randn(1, 1, 1, size, size, generator=g), labels)


# -- the threshold rule ---------------------------------------------------------------------------
def test_threshold_logits_softmax_is_adnets_probability():
    sim = torch.tensor([-20.0, -3.0, 0.0, 7.5, 20.0]).view(1, 1, 1, 5)
    probs = threshold_logits(sim, torch.tensor(-10.0)).softmax(dim=1)
    anomaly = -sim
    assert torch.allclose(probs[:, 1], 1 - torch.sigmoid(0.5 * (anomaly - -10.0)), atol=1e-6)
    assert torch.allclose(probs.sum(dim=1), torch.ones(1, 1, 5))


def test_a_feature_equal_to_the_prototype_is_foreground():
    clf = ThresholdClassifier()
    feats, proto = _features_at_cosines([1.0, 0.0])
    p = _fg_probability(clf, feats, proto)
    assert p[0].item() == pytest.approx(1 / (1 + math.exp(-5)))  # sigmoid(0.5 (20 - 10))
    assert p[1].item() == pytest.approx(1 / (1 + math.exp(5)))  # orthogonal: sigmoid(0.5 (0 - 10))
    q = QueryThresholdClassifier()
    q.setup(2)
    assert torch.allclose(_fg_probability(q, feats, proto), p)  # the Q-Net head starts as ADNet


def test_the_boundary_sits_at_cos_minus_t_over_alpha_and_moves_with_t():
    feats, proto = _features_at_cosines([0.2, 0.4, 0.6, 0.8])
    fg_at = {}
    for t in (-14.0, -10.0, -6.0):
        fg_at[t] = (_fg_probability(ThresholdClassifier(init_threshold=t), feats, proto) > 0.5).tolist()
    assert fg_at[-10.0] == [False, False, True, True]  # boundary cos = 0.5
    assert fg_at[-14.0] == [False, False, False, True]  # lower T: boundary 0.7, more background
    assert fg_at[-6.0] == [False, True, True, True]  # higher T: boundary 0.3, more foreground


def test_several_foreground_prototypes_score_their_best_match():
    feats, _ = _features_at_cosines([0.9, 0.1])
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = _fg_probability(ThresholdClassifier(), feats, protos)
    best = torch.tensor([0.9, math.sqrt(1 - 0.01)])
    assert torch.allclose(p, torch.sigmoid(0.5 * (20 * best - 10)), atol=1e-5)


# -- losses -----------------------------------------------------------------------------------------
def test_threshold_regulariser_only_in_training_and_its_gradient():
    method = tiny_method("ssl-adnet-cpu").train()
    out = method(_episode())
    assert set(out.losses) == {"ce", "align", "threshold"}
    assert out.losses["threshold"].item() == pytest.approx(-10.0 / 20.0)
    t = method.classifier.t
    (grad,) = torch.autograd.grad(out.losses["threshold"], t)
    assert grad.item() == pytest.approx(1 / 20)
    assert torch.isfinite(out.loss)
    episode = _episode()
    with torch.no_grad():
        assert not method.eval()(episode).losses  # eval mode: no loss terms, labels or not
    fixed = tiny_method("ssl-adnet-cpu", "classifier.learn_threshold=false").train()
    assert "threshold" not in fixed(_episode()).losses and not fixed.classifier.t.requires_grad


def test_qnet_threshold_follows_the_query_and_trains():
    method = tiny_method("ssl-qnet-single-cpu").train()
    head = method.classifier.head
    assert head.in_features == 32 and torch.all(head.weight == 0) and head.bias.item() == -10.0
    out = method(_episode())
    assert set(out.losses) == {"ce", "align"}  # Q-Net has no threshold regulariser
    out.loss.backward()
    assert head.weight.grad.abs().sum() > 0  # the threshold learns from the query's features
    with torch.no_grad():
        head.weight.normal_()
        feats = torch.randn(3, 32, 4, 4)
        t = method.classifier.threshold(feats)
    assert t.shape == (3,) and len(set(t.tolist())) == 3
    assert torch.allclose(t, feats.mean(dim=(2, 3)) @ head.weight[0] + head.bias)
    with pytest.raises(FewshotkitError, match="set up for 32-channel features, got 16"):
        method.classifier.threshold(torch.randn(1, 16, 4, 4))


def test_refinement_is_off_by_default_and_pulls_the_prototype_to_the_query():
    torch.manual_seed(0)
    proto = F.normalize(torch.randn(1, 8), dim=1)
    target = F.normalize(proto + 0.6 * torch.randn(1, 8), dim=1)  # the query's organ looks a bit different
    feats = torch.randn(1, 8, 6, 6) * 0.3
    feats[..., :3, :] = target.view(1, 8, 1, 1)
    plain = QueryThresholdClassifier()
    plain.setup(8)
    refined = QueryThresholdClassifier(refine_steps=30, refine_lr=0.05)
    refined.setup(8)
    protos = [torch.zeros(1, 8), proto]
    assert torch.equal(plain.eval()(feats, protos), refined.train()(feats, protos))  # training: never refined
    with torch.inference_mode():  # as the evaluation runs it
        before = plain.eval()(feats, protos)
        after = refined.eval()(feats, protos)
    assert after.shape == before.shape and torch.isfinite(after).all()
    organ = (slice(None), 1, slice(0, 3))
    assert after[organ].mean() > before[organ].mean() + 0.5  # the organ's foreground score rose


# -- regional prototypes -------------------------------------------------------------------------
def test_farthest_points_by_hand():
    line = torch.tensor([[0, x] for x in range(11)])
    assert farthest_points(line, 3).tolist() == [5, 0, 10]  # centre, then the ends (ties: lowest index)
    assert farthest_points(line[:2], 5).tolist() == [0, 1]  # fewer points than regions: every point


def test_two_blobs_give_their_own_mean_prototypes():
    feats = torch.zeros(3, 8, 8)
    feats[0, :, :4], feats[1, :, 4:] = 1.0, 2.0
    feats[2] = torch.arange(64.0).view(8, 8)
    mask = torch.zeros(8, 8)
    mask[1:3, 0:3], mask[5:7, 5:8] = 1, 1
    protos = region_prototypes(feats, mask, regions=2)
    expected = {(1.0, 0.0, feats[2, 1:3, 0:3].mean().item()), (0.0, 2.0, feats[2, 5:7, 5:8].mean().item())}
    assert {tuple(round(v, 4) for v in p.tolist()) for p in protos} == {
        tuple(round(v, 4) for v in e) for e in expected
    }


def test_regional_pooler_counts_and_fallbacks():
    feats = torch.randn(2, 4, 8, 8)
    masks = torch.zeros(2, 2, 8, 8)
    masks[:, 1, 2:6, 2:6] = 1
    masks[:, 0] = 1 - masks[:, 1]
    bg, fg = RegionalPooler(regions=5)(feats, masks)
    assert bg.shape == (1, 4) and fg.shape == (2 * 5 + 1, 4)  # 5 per shot + the global one
    assert RegionalPooler(regions=5, include_global=False)(feats, masks)[1].shape == (10, 4)
    masks[:, 1], masks[:, 0] = 0, 1
    assert torch.equal(RegionalPooler(include_global=False)(feats, masks)[1], torch.zeros(1, 4))
    with pytest.raises(FewshotkitError, match="pooler.regions"):
        RegionalPooler(regions=0)


# -- episodes: k-shot works, multi-way is refused --------------------------------------------------
@pytest.mark.parametrize("preset", THRESHOLD_PRESETS)
def test_k_shot_pools_all_shots(preset):
    method = tiny_method(preset).eval()
    one, three = _episode(shots=1), _episode(shots=3)
    same = Episode(one.support_images.repeat(1, 3, 1, 1, 1), one.support_masks.repeat(1, 3, 1, 1, 1), one.query_images)
    with torch.no_grad():
        logits_1 = method(Episode(one.support_images, one.support_masks, one.query_images)).logits
        logits_3 = method(same).logits
        assert torch.isfinite(method(Episode(three.support_images, three.support_masks, three.query_images)).logits).all()
    assert torch.allclose(logits_1, logits_3, atol=1e-4)  # three copies of one shot = that shot


@pytest.mark.parametrize("preset", THRESHOLD_PRESETS)
def test_multi_way_episodes_are_refused_before_the_backbone_runs(preset):
    method = tiny_method(preset)
    called = []
    method.backbone.register_forward_pre_hook(lambda *_: called.append(1))
    with pytest.raises(FewshotkitError, match="at most 1 foreground class.*got 2"):
        method(_episode(ways=2))
    assert not called


# -- training ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("store") / "syn.h5", min_size=100,
                                volumes=6, seed=0, slices=12, size=64)


@pytest.mark.parametrize("preset", THRESHOLD_PRESETS)
def test_a_few_training_steps_run_with_finite_losses(preset, store, tmp_path, fresh_host):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training import load_method, train

    spec = apply_overrides(preset_spec(preset), TINY)
    train(spec, store, tmp_path / "run", steps=6, device="cpu", seed=0, show_progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(math.isfinite(m["loss"]) for m in metrics)
    loaded = load_method(tmp_path / "run", "cpu").method
    if preset == "ssl-adnet-cpu":  # the learned threshold is saved and restored
        assert loaded.classifier.t.item() != -10.0
