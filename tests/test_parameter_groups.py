"""Per-component optimisation: declared parameter groups, their overrides, and a learned threshold
that reaches a known optimum under the CPU recipe."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.optimization import ParameterGroup, Trainable
from fewshotkit.training.config import TrainingConfig
from fewshotkit.training.optim import (build_optimizer, build_scheduler, declared_groups, describe_groups,
                                       monitored_scalars, optimizer_groups)
from fewshotkit_threshold.classifiers import ThresholdClassifier


def recipe_table(name: str) -> dict:
    from fewshotkit.method.presets import PRESETS

    return dict(PRESETS[name]["training"])


def recipe(name: str = "ssl-adnet-cpu") -> TrainingConfig:
    return TrainingConfig.from_dict(recipe_table(name))


class Toy(nn.Module):
    """ADNet's classifier on fixed features: every pixel has cosine 0.8 to the prototype, half of
    them are foreground. The cross-entropy is lowest where p_fg = 1/2 for every pixel, i.e. where
    0.5 (20 x 0.8 + T) = 0: T* = -16, six units from ADNet's initial -10."""

    T_STAR = -16.0

    def __init__(self) -> None:
        super().__init__()
        self.classifier = ThresholdClassifier(scale=20.0, init_threshold=-10.0, threshold_weight=0.0)
        self.features = torch.tensor([0.8, 0.6]).view(1, 2, 1, 1).expand(1, 2, 4, 4).contiguous()
        self.prototypes = [torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])]
        self.labels = torch.zeros(1, 4, 4, dtype=torch.long)
        self.labels[:, :2] = 1

    def loss(self) -> torch.Tensor:
        return nn.functional.cross_entropy(self.classifier(self.features, self.prototypes), self.labels)


def fit(toy: Toy, config: TrainingConfig, single: bool) -> float:
    optimizer = build_optimizer(optimizer_groups(toy, config, single=single), config)
    scheduler = build_scheduler(optimizer, config)
    for _ in range(config.steps):
        optimizer.zero_grad()
        toy.loss().backward()
        optimizer.step()
        scheduler.step()
    return toy.classifier.t.item()


def test_the_threshold_reaches_its_known_optimum_in_its_own_group():
    config = recipe()
    assert config.groups == {"threshold": {"lr_scale": 10.0, "weight_decay": 0.0}} and config.steps == 2000
    assert abs(fit(Toy(), config, single=False) - Toy.T_STAR) < 0.25  # 4 % of the way from -10


def test_in_the_shared_group_the_threshold_cannot_get_there():
    """The behaviour the group fixes: one AdamW group moves T about one unit in the whole budget."""
    t = fit(Toy(), recipe(), single=True)
    assert -11.5 < t < -10.0


def test_only_a_scalar_threshold_trains_faster_a_threshold_head_would_jump():
    """One AdamW step moves every weight by about its rate, so at 10 x the recipe's rate ADNet's
    scalar T moves by 0.01 while the head that predicts Q-Net's T from 256 channels moves it by more
    than a unit: the -cpu presets give only the scalar its own faster group."""
    from fewshotkit.method.presets import PRESETS
    from fewshotkit_threshold.common import ThresholdHead

    torch.manual_seed(0)
    features = torch.rand(4, 256, 8, 8)  # non-negative, as after a ReLU

    def one_step(module: nn.Module, threshold) -> float:
        optimizer = torch.optim.AdamW(module.parameters(), lr=10 * 1e-3, weight_decay=0.0)
        before = threshold()
        before.backward()
        optimizer.step()
        return abs(threshold().item() - before.item())

    head = ThresholdHead(256)
    scalar = ThresholdClassifier(init_threshold=-10.0)
    assert one_step(head, lambda: head(features).mean()) > 1.0
    assert one_step(scalar, lambda: scalar.t.sum()) == pytest.approx(0.01, rel=1e-3)
    assert PRESETS["ssl-adnet-cpu"]["training"]["groups"] == {"threshold": {"lr_scale": 10.0, "weight_decay": 0.0}}
    for name in ("ssl-qnet-cpu", "ssl-rpt-cpu", "ssl-qnet-single-cpu", "ssl-regional-cpu"):
        assert "groups" not in PRESETS[name]["training"], name


def test_groups_are_named_recorded_and_overridable():
    toy = Toy()
    extra = nn.Linear(2, 2)
    toy.add_module("head", extra)
    config = TrainingConfig.from_dict({"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4,
                                       "groups": {"threshold": {"weight_decay": 0.5}}})
    groups = optimizer_groups(toy, config)
    assert [g["name"] for g in groups] == ["threshold", "default"]
    assert groups[0]["params"] == [toy.classifier.t] and groups[0]["weight_decay"] == 0.5
    assert groups[0]["lr"] == pytest.approx(1e-3) and groups[1]["weight_decay"] == 1e-4
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in extra.parameters()}
    assert describe_groups(groups) == [{"name": "threshold", "parameters": 1, "lr": 1e-3, "weight_decay": 0.5},
                                       {"name": "default", "parameters": 6, "lr": 1e-3, "weight_decay": 1e-4}]


def test_a_group_set_with_an_integer_is_the_spec_set_with_the_same_float():
    """Groups take floats; ``lr_scale=10`` must find the runs (and bench cells) that ``10.0`` trained."""
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec

    spec = preset_spec("ssl-qnet-cpu")
    ints = apply_overrides(spec, ["training.groups.threshold.lr_scale=10", "training.groups.threshold.weight_decay=0"])
    floats = apply_overrides(spec, ["training.groups.threshold.lr_scale=10.0",
                                    "training.groups.threshold.weight_decay=0.0"])
    assert json.dumps(ints.to_dict(), sort_keys=True) == json.dumps(floats.to_dict(), sort_keys=True)
    assert ints.training["groups"] == {"threshold": {"lr_scale": 10.0, "weight_decay": 0.0}}
    assert apply_overrides(spec, ["training.steps=10"]).training["steps"] == 10  # other keys keep their type
    from fewshotkit.method.spec import MethodSpec

    written = {**floats.to_dict(), "training": {**floats.training, "groups": {"threshold": {"lr_scale": 10}}}}
    assert MethodSpec.from_dict(written).training["groups"] == {"threshold": {"lr_scale": 10.0}}, "a spec file too"


def test_a_frozen_threshold_declares_no_group_and_every_parameter_keeps_one_group_in_single_mode():
    clf = ThresholdClassifier(learn_threshold=False)
    assert declared_groups(clf) == {}
    single = optimizer_groups(Toy(), TrainingConfig(), single=True)
    assert len(single) == 1 and single[0]["name"] == "default"


def test_bad_group_settings_are_one_line_errors():
    with pytest.raises(FewshotkitError, match="no parameter group 'treshold'.*Did you mean 'threshold'"):
        optimizer_groups(Toy(), TrainingConfig.from_dict({"groups": {"treshold": {"lr_scale": 2}}}))
    with pytest.raises(FewshotkitError, match="unknown key 'lr'.*lr_scale, weight_decay"):
        TrainingConfig.from_dict({"groups": {"threshold": {"lr": 2}}})
    with pytest.raises(FewshotkitError, match="lr_scale must be > 0"):
        TrainingConfig.from_dict({"groups": {"threshold": {"lr_scale": 0}}})

    class Clash(Trainable, nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.scale = scale

        def parameter_groups(self) -> dict[str, ParameterGroup]:
            return {"head": ParameterGroup([self.w], lr_scale=self.scale)}

    both = nn.Sequential(Clash(1.0), Clash(2.0))
    with pytest.raises(FewshotkitError, match="'head' is declared twice with different settings"):
        declared_groups(both)
    assert len(declared_groups(nn.Sequential(Clash(2.0), Clash(2.0)))["head"].params) == 2


def test_monitored_scalars_name_the_threshold():
    toy = Toy()
    assert monitored_scalars(toy) == {"threshold": -10.0}


def test_a_threshold_run_records_its_groups_and_logs_t(tmp_path, fresh_host):
    from conftest import pseudolabelled_store
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training import train

    store = pseudolabelled_store(tmp_path / "syn.h5", min_size=100, volumes=6, seed=0, slices=12, size=64)
    spec = apply_overrides(preset_spec("ssl-adnet-cpu"), [
        "image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
        "training.log_every=2", "training.checkpoint_every=100", "training.batch_size=2"])
    train(spec, store, tmp_path / "run", steps=4, device="cpu", seed=0, show_progress=False)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    names = [g["name"] for g in run["optimizer_groups"]]
    assert names == ["threshold", "default"] and run["optimizer_groups"][0]["parameters"] == 1
    assert run["optimizer_groups"][0]["lr"] == pytest.approx(10 * run["optimizer_groups"][1]["lr"])
    assert run["optimizer_groups"][1]["lr"] == spec.training["lr"]  # the base rate, not the first warm-up step's
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(m["threshold"]) for m in metrics) and metrics[-1]["threshold"] != -10.0
    assert metrics[0]["lr"] < run["optimizer_groups"][1]["lr"]  # the default group's rate, in warm-up


def test_one_parameter_in_two_groups_is_a_one_line_error():
    shared = nn.Parameter(torch.zeros(1))

    class Holder(Trainable, nn.Module):
        def __init__(self, group: str) -> None:
            super().__init__()
            self.group = group

        def parameter_groups(self) -> dict[str, ParameterGroup]:
            return {self.group: ParameterGroup([shared])}

    with pytest.raises(FewshotkitError, match="declared in two parameter groups, 'a' and 'b'"):
        declared_groups(nn.Sequential(Holder("a"), Holder("b")))


def test_gmrd_puts_its_descriptor_position_weights_in_their_own_group():
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    method = build_method(preset_spec("ssl-gmrd-cpu"))
    names = {id(p): name for name, p in method.named_parameters()}
    declared = declared_groups(method)
    assert sorted(names[id(p)] for p in declared["descriptors"].params) == [
        "bg_mlp.layers.0.bias", "bg_mlp.layers.0.weight", "fg_mlp.layers.0.bias", "fg_mlp.layers.0.weight"]
    config = recipe("ssl-gmrd-cpu")
    assert {g["name"]: g["lr"] for g in optimizer_groups(method, config)} == {"descriptors": 1e-3, "default": 1e-3}
    slow = TrainingConfig.from_dict({**recipe_table("ssl-gmrd-cpu"), "groups": {"descriptors": {"lr_scale": 0.05}}})
    lrs = {g["name"]: g["lr"] for g in optimizer_groups(method, slow)}
    assert lrs["descriptors"] == pytest.approx(5e-5) and lrs["default"] == 1e-3


def test_one_adamw_step_moves_gmrd_descriptors_by_many_times_their_size_unless_their_group_is_slowed():
    """A disk on noise, 128 px: one step at the recipe's lr 1e-3 from initialisation changes the
    foreground descriptors by more than 5 times their size; at lr_scale 0.05, by far less."""
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    disk = (((yy - 64) ** 2 + (xx - 60) ** 2) < 20 ** 2).float()
    image = (disk + 0.3 * torch.randn(128, 128, generator=generator)).view(1, 1, 1, 128, 128)
    episode = Episode(image, torch.stack([1 - disk, disk]).view(1, 1, 2, 128, 128), image,
                      disk.long().view(1, 1, 128, 128))

    def change(scale: float) -> float:
        torch.manual_seed(0)
        method = build_method(preset_spec("ssl-gmrd-cpu"))
        config = TrainingConfig.from_dict({**recipe_table("ssl-gmrd-cpu"),
                                           "groups": {"descriptors": {"lr_scale": scale}}})
        optimizer = build_optimizer(optimizer_groups(method, config), config)

        def descriptors() -> torch.Tensor:
            method.eval()
            with torch.no_grad():
                ((support, _),) = method.level_features(episode)
                return method.class_descriptors(support[0], episode.support_masks[0])[1][:-2]

        before = descriptors()
        method.train()
        sum(method(episode).losses.values()).backward()
        optimizer.step()
        return float((descriptors() - before).norm() / before.norm())

    full, slowed = change(1.0), change(0.05)
    assert full > 5.0 and slowed < full / 5
