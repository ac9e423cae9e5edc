"""Training: config, augmentation, episode batches, the loop (SSL and supervised), checkpoints,
exact resume after Ctrl-C, and the train command's one-line errors. All on a tiny synthetic store."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.training.augment import Augmenter, smoothing_matrix
from fewshotkit.training.config import AugmentConfig, TrainingConfig
from fewshotkit.training.trainer import HookBase

from conftest import pseudolabelled_store

TINY = [
    "image_size=64",
    "backbone.width=8",
    "backbone.out_channels=32",
    "backbone.output_stride=8",
    "training.log_every=5",
    "training.checkpoint_every=5",
    "training.lr=0.01",
    "training.batch_size=1",
    # the tests below were written for SGD with the step schedule (a cosine schedule depends on the
    # step target, so raising it on resume changes the remaining learning rates by design)
    "training.optimizer=sgd",
    "training.schedule=step",
    "training.warmup_steps=0",
    "training.weight_decay=5e-4",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """6 synthetic 64 x 64 volumes of 12 slices with a felzenszwalb pseudolabel set."""
    return pseudolabelled_store(tmp_path_factory.mktemp("store") / "syn.h5", min_size=100,
                                volumes=6, seed=0, slices=12, size=64)


def tiny_spec(*extra: str):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec

    return apply_overrides(preset_spec("ssl-alpnet-cpu"), [*TINY, *extra])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


# -- config -------------------------------------------------------------------------------------
def test_config_defaults_are_the_reference_recipe():
    c = TrainingConfig.from_dict({})
    assert (c.lr, c.momentum, c.weight_decay, c.lr_step, c.lr_gamma, c.batch_size) == (1e-3, 0.9, 5e-4, 1000, 0.95, 1)
    assert c.steps == 100_000 and c.regime == "ssl"
    a = c.aug
    assert (a.rotate, a.shift, a.shear, a.scale, a.elastic_alpha, a.elastic_sigma, a.gamma) == (
        5.0, 5.0, 5.0, (0.9, 1.2), 10.0, 5.0, (0.5, 1.5))


def test_config_nested_flat_and_errors():
    c = TrainingConfig.from_dict({"aug": {"rotate": 10}, "aug.gamma": [0.8, 1.2], "steps": 7})
    assert c.aug.rotate == 10.0 and c.aug.gamma == (0.8, 1.2) and c.steps == 7
    assert TrainingConfig.from_dict(c.to_dict()) == c
    with pytest.raises(FewshotkitError, match="Did you mean 'steps'"):
        TrainingConfig.from_dict({"stepz": 1})
    with pytest.raises(FewshotkitError, match="aug.scale"):
        TrainingConfig.from_dict({"aug": {"scale": [1.2, 0.9]}})
    with pytest.raises(FewshotkitError, match="regime"):
        TrainingConfig.from_dict({"regime": "semi"})


def test_every_training_option_is_documented_with_its_default():
    """docs/training.md has a row per [training] and [training.aug] key, with today's default."""
    import dataclasses
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, flags=re.M))
    for config in (TrainingConfig(), AugmentConfig()):
        for f in dataclasses.fields(config):
            if f.name == "aug":
                continue
            assert f.name in rows, f"docs/training.md has no row for '{f.name}'"
            default = getattr(config, f.name)
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                assert float(rows[f.name]) == default, f"docs/training.md: '{f.name}' defaults to {default}"
    assert not set(rows) - {f.name for c in (TrainingConfig, AugmentConfig) for f in dataclasses.fields(c)}


# -- augmentation -------------------------------------------------------------------------------
def test_smoothing_matrix_matches_scipy():
    from scipy import ndimage

    x = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    ours = (smoothing_matrix(40, 5.0, torch.device("cpu")) @ torch.from_numpy(x)
            @ smoothing_matrix(50, 5.0, torch.device("cpu")).T).numpy()
    np.testing.assert_allclose(ours, ndimage.gaussian_filter(x, 5.0, mode="mirror", truncate=3.0), atol=1e-5)


def test_augmenter_identity_shift_and_determinism():
    image = torch.zeros(1, 1, 40, 48)
    image[0, 0, 10:20, 12:22] = 1.0
    still = AugmentConfig(rotate=0, shift=0, shear=0, scale=(1, 1), elastic_alpha=0, gamma=(1, 1))
    out, mask = Augmenter(still, torch.Generator().manual_seed(0))(image, image.clone())
    assert torch.allclose(out, image, atol=1e-6) and torch.equal(mask, image)

    # a pure shift moves the image's centre of mass by exactly the drawn offset (x then y, in px)
    shift = AugmentConfig(rotate=0, shift=3, shear=0, scale=(1, 1), elastic_alpha=0, gamma=(1, 1))
    moved, _ = Augmenter(shift, torch.Generator().manual_seed(1))(image, None)
    draws = torch.rand(5, generator=torch.Generator().manual_seed(1))  # rotate, shear, scale, tx, ty
    tx, ty = (draws[3:] * 6 - 3).tolist()
    ys, xs = torch.meshgrid(torch.arange(40.0), torch.arange(48.0), indexing="ij")
    weight = moved[0, 0]
    assert weight.sum().item() == pytest.approx(100, abs=1e-3)
    assert (weight * xs).sum().item() / 100 == pytest.approx(16.5 + tx, abs=1e-3)
    assert (weight * ys).sum().item() / 100 == pytest.approx(14.5 + ty, abs=1e-3)

    images = torch.randn(4, 1, 64, 64)
    masks = (torch.rand(4, 1, 64, 64) > 0.5).float()
    a1 = Augmenter(AugmentConfig(), torch.Generator().manual_seed(3))(images, masks)
    a2 = Augmenter(AugmentConfig(), torch.Generator().manual_seed(3))(images, masks)
    assert torch.equal(a1[0], a2[0]) and torch.equal(a1[1], a2[1])
    assert set(a1[1].unique().tolist()) <= {0.0, 1.0}
    # gamma keeps each view inside its original intensity range
    assert a1[0].min() >= images.min() - 1e-4 and a1[0].max() <= images.max() + 1e-4


def test_training_zoom_config_is_checked_and_left_out_when_off():
    assert "zoom_p" not in TrainingConfig.from_dict({}).to_dict()["aug"], "runs without it keep their records"
    on = TrainingConfig.from_dict({"aug": {"zoom_p": 0.5, "zoom_margin": [0, 0.1]}})
    assert on.aug.zoom_margin == (0.0, 0.1) and TrainingConfig.from_dict(on.to_dict()) == on
    margin_only = TrainingConfig.from_dict({"aug": {"zoom_margin": [0, 0.1]}})
    assert TrainingConfig.from_dict(margin_only.to_dict()) == margin_only
    with pytest.raises(FewshotkitError, match="aug.zoom_p must be a probability"):
        TrainingConfig.from_dict({"aug.zoom_p": 1.5})
    with pytest.raises(FewshotkitError, match="aug.zoom_margin must be a pair"):
        TrainingConfig.from_dict({"aug.zoom_margin": [0.2, 0.1]})


class _OneSlice:
    """Always the same 64 x 64 slice (intensity = column index) and an 8 x 8 segment at rows 40-47,
    columns 8-15; supervised: the same pair as support and a query of another size (128 x 128)."""

    def __init__(self, regime: str) -> None:
        self.regime = regime
        self.image = np.tile(np.arange(64, dtype=np.float32), (64, 1))
        self.mask = np.zeros((64, 64), bool)
        self.mask[40:48, 8:16] = True

    def sample(self, rng):
        from fewshotkit.data.episodes.sampling import AnnotatedSample, SelfSupervisedSample

        rng.random()  # a sampler's own draw
        if self.regime == "ssl":
            return SelfSupervisedSample(self.image, self.mask, "v", 0, 1)
        big = np.kron(self.mask, np.ones((2, 2), bool))
        return AnnotatedSample(self.image, self.mask, np.kron(self.image, np.ones((2, 2), np.float32)), big,
                               1, "a", "b", 0, 0)


@pytest.mark.parametrize("regime", ["ssl", "supervised"])
def test_training_zoom_crops_every_view_to_the_supports_window(regime):
    """zoom_p=1, margin 0: the episode is the support's 8 x 8 box, resized to the model's 32 px, in
    the support and in the query alike (a query of another size at the same fractions)."""
    from fewshotkit.training.batches import EpisodeBatcher

    still = dict(rotate=0, shift=0, shear=0, scale=(1, 1), elastic_alpha=0, gamma=(1, 1))

    def episode(**zoom):
        batcher = EpisodeBatcher(_OneSlice(regime), regime, 32, Augmenter(AugmentConfig(**still, **zoom),
                                 torch.Generator().manual_seed(0)), torch.device("cpu"))
        rng = np.random.default_rng(0)
        return batcher.next(rng)[0], rng.random()

    zoomed, after_zoom = episode(zoom_p=1.0, zoom_margin=(0.0, 0.0))
    assert zoomed.support_masks[0, 0, 1].all() and zoomed.query_labels.all(), "the window is the box"
    columns = zoomed.support_images[0, 0, 0, 0]
    assert columns.min() >= 8 - 0.5 and columns.max() <= 15 + 0.5, "the box's columns, no others"
    plain, after_plain = episode()
    assert plain.support_masks[0, 0, 1].float().mean() == pytest.approx(8 * 8 / 64**2), "unzoomed: the whole slice"
    assert after_zoom != after_plain, "the zoom draws from the episode stream ..."
    _, after_off = episode(zoom_p=0.0)
    assert after_off == after_plain, "... and only when it is on, so other runs keep their episodes"


# -- the loop -----------------------------------------------------------------------------------
def test_ssl_training_lowers_the_loss_and_leaves_a_loadable_checkpoint(store, tmp_path, fresh_host):
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.training import load_method, train

    out = tmp_path / "run"
    spec = tiny_spec("training.log_every=20", "training.checkpoint_every=100", "training.batch_size=2")
    last = train(spec, store, out, steps=200, device="cpu", seed=0)
    assert last == out / "checkpoints" / "last.pt"
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(20, 201, 20))
    first, final = np.mean([m["loss"] for m in metrics[:2]]), np.mean([m["loss"] for m in metrics[-2:]])
    assert final < 0.8 * first, (first, final)
    assert (out / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt", "step_000100.pt", "step_000200.pt"]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["final_step"] == 200 and run["regime"] == "ssl"
    assert not set(run["fold_train"]) & {*run["fold_queries"], run["fold_support"]}

    loaded = load_method(out, "cpu")
    assert loaded.meta["step"] == 200 and not loaded.method.training and loaded.spec.image_size == 64
    x = torch.randn(1, 1, 1, 64, 64)
    m = torch.zeros(1, 1, 2, 64, 64)
    m[:, :, 1, 20:40, 20:40] = 1
    m[:, :, 0] = 1 - m[:, :, 1]
    with torch.no_grad():
        logits = loaded.method(Episode(x, m, x)).logits
    assert logits.shape == (1, 1, 2, 64, 64)


def test_resume_after_ctrl_c_is_exact(store, tmp_path, fresh_host):
    from fewshotkit.training import train

    spec = tiny_spec()
    straight = train(spec, store, tmp_path / "a", steps=20, device="cpu", seed=3, show_progress=False)

    def interrupt(step: int) -> None:
        if step == 12:
            signal.raise_signal(signal.SIGINT)  # in this thread: set before the next step

    with pytest.raises(KeyboardInterrupt):
        train(spec, store, tmp_path / "b", steps=20, device="cpu", seed=3, on_step=interrupt)
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["status"] == "interrupted" and run["final_step"] == 12  # stops at the step boundary
    resumed = train(None, None, tmp_path / "b", resume=True, device="cpu")
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logged = {name: [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
              for name in ("a", "b")}
    assert [r["step"] for r in logged["b"]] == [5, 10, 15, 20]
    # the window the interruption cut (steps 11-15) is averaged whole, as without it
    assert [r["loss"] for r in logged["b"]] == [r["loss"] for r in logged["a"]]

    # 10 steps, then a new process-like call that raises the target: same weights again
    train(spec, store, tmp_path / "c", steps=10, device="cpu", seed=3)
    extended = train(None, None, tmp_path / "c", resume=True, steps=20, device="cpu")
    c = weights(extended)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_resume_on_another_device_type_reseeds_the_augmentation_stream(store, tmp_path, fresh_host):
    """A run whose last checkpoint was written on a GPU resumes on the CPU (and back): the CUDA
    generator's Philox state (16 bytes) does not fit a CPU generator, so that stream is re-seeded."""
    from fewshotkit.method.checkpoint import save_checkpoint
    from fewshotkit.training import train

    out = tmp_path / "run"
    train(tiny_spec(), store, out, steps=4, device="cpu", seed=3, show_progress=False)
    last = out / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["rng"][0]["augment"] = torch.zeros(16, dtype=torch.uint8)  # what a CUDA generator's get_state() gives
    save_checkpoint(last, payload)
    with pytest.warns(UserWarning, match="augmentation stream is re-seeded"):
        train(None, None, out, resume=True, steps=8, device="cpu", show_progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["final_step"] == 8


def test_supervised_setting1_never_trains_on_excluded_classes(store, tmp_path, fresh_host):
    from fewshotkit.training import train

    out = tmp_path / "sup"
    train(tiny_spec(), store, out, regime="supervised", exclude="liver,spleen", steps=6, device="cpu",
          log_episodes=True)
    run = json.loads((out / "run.json").read_text())
    assert run["regime"] == "supervised" and run["train_classes"] == ["right kidney", "left kidney"]
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6
    for e in episodes:
        assert e["cls"] in (2, 3) and e["support_volume"] != e["query_volume"]
        assert {e["support_volume"], e["query_volume"]} <= set(run["fold_train"])


def test_ssl_setting2_drops_slices_with_excluded_classes(store, tmp_path, fresh_host):
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.training import train

    out = tmp_path / "s2"
    train(tiny_spec("training.batch_size=4"), store, out, setting=2, exclude="lower", steps=5, device="cpu",
          log_episodes=True)
    s = SliceStore(store)
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 20
    train_vols = set(json.loads((out / "run.json").read_text())["fold_train"])
    for e in episodes:
        assert e["volume"] in train_vols
        assert not np.isin(s.label(e["volume"], e["z"]), [2, 3]).any()


def test_zero_steps_writes_the_initial_checkpoint(store, tmp_path, fresh_host):
    from fewshotkit.training import load_method, train

    last = train(tiny_spec(), store, tmp_path / "init", steps=0, device="cpu")
    assert load_method(last).meta["step"] == 0


def test_load_method_errors(tmp_path, fresh_host):
    from fewshotkit.training import load_method

    with pytest.raises(FewshotkitError, match="does not exist"):
        load_method(tmp_path / "missing.pt")
    with pytest.raises(FewshotkitError, match="has no checkpoint"):
        load_method(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FewshotkitError, match="not a readable fewshotkit checkpoint"):
        load_method(junk)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(FewshotkitError, match="not a fewshotkit checkpoint"):
        load_method(tmp_path / "other.pt")


def test_load_method_unknown_method(store, tmp_path, fresh_host):
    from fewshotkit.method.checkpoint import save_checkpoint
    from fewshotkit.training import load_method, train

    last = train(tiny_spec(), store, tmp_path / "r", steps=0, device="cpu")
    payload = torch.load(last, weights_only=True)
    payload["spec_toml"] = payload["spec_toml"].replace('method = "alpnet"', 'method = "nosuchmethod"')
    save_checkpoint(tmp_path / "edited.pt", payload)
    with pytest.raises(FewshotkitError, match="edited.pt"):
        load_method(tmp_path / "edited.pt")


# -- the command --------------------------------------------------------------------------------
def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for needle in needles:
        assert needle in lines[0], result.output


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--pseudolabels", "slic"], ("no pseudolabel set 'slic'", "fewshotkit pseudolabel")),
        (["--exclude", "liver,pancreas"], ("unknown class 'pancreas'",)),
        (["--fold", "5"], ("--fold 5 is out of range",)),
        (["--set", "training.stepz=3"], ("unknown key 'stepz'",)),
    ],
)
def test_cli_bad_input_is_one_line(store, tmp_path, run_cli, args, needles):
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(tmp_path / "r"), *args)
    _one_line_error(result, *needles)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_cli_spec_that_fails_to_load(store, tmp_path, run_cli):
    bad = tmp_path / "bad.toml"
    bad.write_text('method = "alpnet"\n[backbone\n')
    _one_line_error(run_cli("train", str(bad), "--store", str(store), "--out", str(tmp_path / "r")), "bad.toml")
    _one_line_error(run_cli("train", "--resume", str(tmp_path / "nothing")), "not a run directory")


def test_cli_store_without_pseudolabels(tmp_path, run_cli):
    from fewshotkit.data.ingest.synthetic import ingest_synthetic

    bare = ingest_synthetic(tmp_path / "bare.h5", volumes=5, slices=4, size=32, quiet=True)
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(bare), "--out", str(tmp_path / "r"))
    _one_line_error(result, "sets: none", "fewshotkit pseudolabel")


def test_cli_trains_and_resumes(store, tmp_path, run_cli):
    out = tmp_path / "cli"
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(out),
                     "--steps", "3", "--device", "cpu", *sum((["--set", s] for s in TINY), []))
    assert result.exit_code == 0, result.output
    assert "checkpoints/last.pt" in result.output.replace("\n", "")
    result = run_cli("train", "--resume", str(out), "--steps", "4", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["final_step"] == 4


def test_loss_weights_must_name_the_methods_loss_terms(store, tmp_path, fresh_host):
    from fewshotkit.training import train

    with pytest.raises(FewshotkitError, match="returns the loss terms align, ce"):
        train(tiny_spec("training.loss_weights={cee = 2.0}"), store, tmp_path / "w", steps=1, device="cpu")


@pytest.mark.parametrize("capable", [True, False], ids=["bf16-cpu", "no-bf16-cpu"])
def test_amp_on_the_cpu_is_bfloat16_or_a_warning(store, tmp_path, fresh_host, monkeypatch, capable):
    from fewshotkit.training import loop, train

    monkeypatch.setattr(loop, "cpu_bf16_supported", lambda: capable)
    if capable:
        train(tiny_spec(), store, tmp_path / "amp", steps=2, device="cpu", amp=True, show_progress=False)
    else:
        with pytest.warns(UserWarning, match="bfloat16 instructions"):
            train(tiny_spec(), store, tmp_path / "amp", steps=2, device="cpu", amp=True, show_progress=False)
    run = json.loads((tmp_path / "amp" / "run.json").read_text())
    assert run["amp"] == ("bfloat16" if capable else False)


# -- range checks, resume and run records ----------------------------------------------------------
@pytest.mark.parametrize("values, option", [
    ({"weight_decay": -1e-4}, "spec.training.weight_decay must be >= 0"),
    ({"momentum": -0.5}, "spec.training.momentum must be >= 0"),
    ({"nesterov": True, "momentum": 0.0}, "spec.training.nesterov needs momentum > 0"),
    ({"min_segment_size": -1}, "spec.training.min_segment_size must be >= 0"),
    ({"min_pixels": -1}, "spec.training.min_pixels must be >= 0"),
])
def test_config_refuses_optimiser_and_episode_values_out_of_range(values, option):
    with pytest.raises(FewshotkitError, match=option) as caught:
        TrainingConfig.from_dict(values)
    assert "\n" not in str(caught.value)


def test_cli_refuses_a_negative_seed(store, tmp_path, run_cli):
    from fewshotkit.training import train

    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(tmp_path / "r"),
                     "--seed", "-1")
    assert result.exit_code == 2 and "--seed" in result.output, result.output
    with pytest.raises(FewshotkitError, match="--seed must be >= 0"):
        train(tiny_spec(), store, tmp_path / "api", seed=-1, steps=1, device="cpu")


@pytest.mark.parametrize("option", [["--eval-every", "5"], ["--seed", "0"], ["--fold", "0"], ["--setting", "1"],
                                    ["--exclude", "liver"], ["--val-scans", "0"], ["--val-from", "end"]])
def test_cli_resume_refuses_options_the_run_fixes(tmp_path, run_cli, option):
    """Even at its default value: a given option would otherwise be silently ignored."""
    _one_line_error(run_cli("train", "--resume", str(tmp_path / "run"), *option), f"do not combine it with {option[0]}")


class StopsBeforeStepping(HookBase):
    """Stands for a process killed before its next checkpoint."""

    def before_step(self) -> None:
        raise RuntimeError("killed")


def test_a_resume_that_changed_amp_and_the_episode_log_resumes_again(store, tmp_path, fresh_host):
    from fewshotkit.training import train

    out = tmp_path / "run"
    train(tiny_spec(), store, out, steps=3, device="cpu", show_progress=False)
    with pytest.raises(RuntimeError, match="killed"):  # spec.toml says amp = false, log_episodes = true now
        train(None, None, out, resume=True, steps=6, amp=False, log_episodes=True, device="cpu", show_progress=False,
              hooks=[StopsBeforeStepping()])
    assert "log_episodes = true" in (out / "spec.toml").read_text()
    train(None, None, out, resume=True, steps=6, device="cpu", show_progress=False)
    assert json.loads((out / "run.json").read_text())["final_step"] == 6


def test_a_resumed_run_records_only_its_own_outcome(store, tmp_path, fresh_host):
    from fewshotkit.training import train

    out = tmp_path / "run"
    train(tiny_spec(), store, out, steps=3, device="cpu", show_progress=False)
    with pytest.raises(RuntimeError, match="killed"):
        train(None, None, out, resume=True, steps=6, device="cpu", show_progress=False, hooks=[StopsBeforeStepping()])
    failed = json.loads((out / "run.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "killed"
    assert not {"finished", "train_seconds", "train_cpu_seconds", "rank_weight_sha256"} & set(failed)
    train(None, None, out, resume=True, steps=6, device="cpu", show_progress=False)
    completed = json.loads((out / "run.json").read_text())
    assert completed["status"] == "completed" and not {"error", "updated"} & set(completed)


class SecondCtrlC(HookBase):
    def after_step(self) -> None:
        if self.trainer.step == 2:
            raise KeyboardInterrupt  # what a second Ctrl-C raises, at any point


def test_a_second_ctrl_c_leaves_run_json_interrupted(store, tmp_path, fresh_host):
    from fewshotkit.training import train

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_spec(), store, out, steps=4, device="cpu", show_progress=False, hooks=[SecondCtrlC()])
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["final_step"] == 2


def test_numbered_checkpoints_are_ordered_by_step_past_six_digits(tmp_path):
    from fewshotkit.method.checkpoint import FORMAT, VERSION, read_checkpoint, save_checkpoint
    from fewshotkit.training.checkpoint import prune_checkpoints

    directory = tmp_path / "run" / "checkpoints"
    directory.mkdir(parents=True)
    for step in (999_998, 999_999, 1_000_000):
        (directory / f"step_{step:06d}.pt").write_bytes(b"")
    prune_checkpoints(directory, 2)
    assert sorted(p.name for p in directory.iterdir()) == ["step_1000000.pt", "step_999999.pt"]

    last = save_checkpoint(directory / "last.pt", {"format": FORMAT, "version": VERSION, "step": 1_000_000,
                                                   "model": {"w": torch.zeros(2)}})
    payload = torch.load(last, weights_only=True)
    payload["step"] = 7  # the training state no longer matches its digest
    torch.save(payload, last)
    with pytest.raises(FewshotkitError, match="corrupt") as caught:
        read_checkpoint(last)
    message = str(caught.value)
    assert f"'{directory / 'step_1000000.pt'}'" in message and f"copy it to '{last}'" in message
    assert f"--resume {tmp_path / 'run'}" in message
