"""``backbone.pretrained`` through the hubs' caches, offline, with files the tests write where timm
(Hugging Face cache) and torchvision (torch hub cache) keep them; ``fewshotkit weights``; a weights
file that does not fit the backbone fails instead of training from random weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from conftest import pseudolabelled_store
from fewshotkit.core.errors import FewshotkitError

REVISION = "0123456789abcdef0123456789abcdef01234567"  # the snapshot a Hub cache keeps a file under


def hf_cache_file(repo: str, state: dict[str, torch.Tensor], filename: str = "model.safetensors") -> Path:
    """Write ``state`` where huggingface_hub keeps ``repo``'s ``filename`` (HF_HOME/hub)."""
    from safetensors.torch import save_file

    folder = Path(os.environ["HF_HOME"]) / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    path = folder / "snapshots" / REVISION / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def random_state(model: str, **kwargs) -> dict[str, torch.Tensor]:
    """Random tensors with the names and shapes of timm's ``model`` (its released layout)."""
    import timm

    torch.manual_seed(1)
    reference = timm.create_model(model, pretrained=False, **kwargs)
    return {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in reference.state_dict().items()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch):
    """Empty caches of this test only."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_imagenet_loads_timms_file_from_the_hugging_face_cache_offline():
    from fewshotkit_timm.backbones import TimmBackbone

    state = random_state("resnet18")
    path = hf_cache_file("timm/resnet18.a1_in1k", state)
    backbone = TimmBackbone("resnet18", 16, in_channels=1, pretrained="imagenet")
    assert torch.equal(backbone.body.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.allclose(backbone.body.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    source = backbone.weights_source
    assert source["source"] == "huggingface:timm/resnet18.a1_in1k" and source["sha256"] == sha256(path)
    assert source["matched"] == source["tensors"] == len(backbone.body.state_dict())
    # a timm tag names the same file; a tag timm does not have is refused with the ones it has
    assert TimmBackbone("resnet18", 16, pretrained="a1_in1k").weights_source["file"] == str(path)
    with pytest.raises(FewshotkitError, match="no weights 'a1_in1kk'.*Did you mean 'a1_in1k'"):
        TimmBackbone("resnet18", 16, pretrained="a1_in1kk")


def test_coco_loads_torchvisions_deeplab_body_from_the_torch_hub_cache():
    from fewshotkit_timm.backbones import TimmBackbone

    state = random_state("resnet50")
    checkpoint = {f"backbone.{k}": v.half() for k, v in state.items() if not k.startswith("fc.")}
    checkpoint["classifier.4.weight"] = torch.randn(21, 256, 1, 1)  # the DeepLabv3 head: not a body tensor
    path = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints" / "deeplabv3_resnet50_coco-cd0a2569.pth"
    path.parent.mkdir(parents=True)
    torch.save(checkpoint, path)
    backbone = TimmBackbone("resnet50", 16, in_channels=3, pretrained="coco")
    assert torch.equal(backbone.body.layer3[2].conv1.weight, state["layer3.2.conv1.weight"].half().float())
    assert backbone.weights_source["source"] == "torch-hub:torchvision DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1"
    assert backbone.weights_source["sha256"] == sha256(path)


def test_offline_without_the_file_is_one_line_naming_the_file_and_its_folder(tmp_path):
    from fewshotkit_timm.backbones import TimmBackbone, deeplab_resnet101

    with pytest.raises(FewshotkitError) as hub:
        TimmBackbone("resnet18", 16, pretrained="imagenet")
    message = str(hub.value)
    assert "\n" not in message and "HF_HUB_OFFLINE=1" in message
    assert "model.safetensors" in message and "hf download timm/resnet18.a1_in1k model.safetensors" in message
    assert f"models--timm--resnet18.a1_in1k of its Hugging Face cache into {tmp_path / 'hf' / 'hub'}" in message

    with pytest.raises(FewshotkitError) as torchvision:
        deeplab_resnet101(pretrained="coco")
    message = str(torchvision.value)
    assert "\n" not in message and "deeplabv3_resnet101_coco-586e9e4e.pth" in message
    assert f"put it in {tmp_path / 'torch' / 'hub' / 'checkpoints'}" in message
    with pytest.raises(FewshotkitError, match="COCO weights exist for resnet101, resnet50 bodies, not 'resnet18'"):
        TimmBackbone("resnet18", 16, pretrained="coco")


def test_dinov2_vit_loads_from_the_hub_cache_into_a_one_channel_body():
    from fewshotkit_timm.vit import ViTBackbone

    state = random_state("vit_small_patch14_dinov2", num_classes=0)
    hf_cache_file("timm/vit_small_patch14_dinov2.lvd142m", state)
    backbone = ViTBackbone(out_channels=8, in_channels=1, pretrained="imagenet")
    assert torch.equal(backbone.body.blocks[11].mlp.fc2.weight, state["blocks.11.mlp.fc2.weight"])
    assert torch.equal(backbone.body.pos_embed, state["pos_embed"])
    assert backbone.weights_source["matched"] == len(backbone.body.state_dict())
    features = backbone(torch.randn(1, 1, 70, 56))
    assert features.shape == (1, 8, 5, 4) and backbone.stride == 14


def test_weights_command_lists_each_backbones_weights_and_whether_cached(run_cli):
    hf_cache_file("timm/resnet101.tv_in1k", {"conv1.weight": torch.zeros(1)})
    result = run_cli("weights", "deeplab-resnet101", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["pretrained"]: row for row in json.loads(result.output)}
    assert {"imagenet", "coco", "tv_in1k"} <= set(rows) and rows["tv_in1k"]["cached"].endswith("model.safetensors")
    assert rows["coco"]["cached"] is None and rows["coco"]["file"] == "deeplabv3_resnet101_coco-586e9e4e.pth"
    table = run_cli("weights")
    assert table.exit_code == 0 and "vit" in table.output and "random start" in table.output
    assert run_cli("weights", "vitt").exit_code != 0


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("weights") / "syn.h5", min_size=100, volumes=5,
                                seed=1, slices=8, size=64)


TIMM_SETS = ["--set", "backbone.type=timm", "--set", "backbone.model=resnet18", "--set", "backbone.in_channels=1",
             "--set", "backbone.out_channels=32", "--set", "backbone.output_stride=8", "--set", "image_size=64"]


def test_a_weights_file_of_another_architecture_fails_instead_of_training_from_random_weights(run_cli, store,
                                                                                             tmp_path):
    import timm

    # names that never match (an encoder.* wrapper) and a file for another ResNet
    state = timm.create_model("resnet50", pretrained=False).state_dict()
    for name, weights in (("renamed.pth", {f"encoder.{k}": v for k, v in state.items()}), ("resnet50.pth", state)):
        torch.save(weights, tmp_path / name)
        out = tmp_path / f"run-{name}"
        result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(out),
                         "--steps", "1", "--device", "cpu", *TIMM_SETS, "--set", f"backbone.weights='{tmp_path / name}'")
        assert result.exit_code != 0 and "at least 90% must match" in result.output, result.output
        assert not (out / "checkpoints").exists()


def test_run_json_records_the_weights_source_and_sha256(run_cli, store, tmp_path):
    path = hf_cache_file("timm/resnet18.tv_in1k", random_state("resnet18"))
    out = tmp_path / "run"
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(out), "--steps", "1",
                     "--device", "cpu", *TIMM_SETS, "--set", "backbone.pretrained=tv_in1k")
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "run.json").read_text())["backbone_weights"]
    assert record["source"] == "huggingface:timm/resnet18.tv_in1k" and record["sha256"] == sha256(path)
    assert record["file"] == str(path)

    # the trained model is used without the pretrained file: its checkpoint holds the weights
    import shutil

    from fewshotkit.method.checkpoint import load_method, read_checkpoint

    shutil.rmtree(Path(os.environ["HF_HOME"]))
    loaded = load_method(out, "cpu")
    trained = read_checkpoint(out / "checkpoints" / "last.pt")["model"]["backbone.body.layer4.1.conv2.weight"]
    assert torch.equal(loaded.method.backbone.body.layer4[1].conv2.weight, trained)
    assert loaded.method.backbone.weights_source is None
