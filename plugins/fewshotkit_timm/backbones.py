"""Backbones built on timm: any timm CNN as a dilated feature extractor + a 1x1 projection."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.core.userinput import did_you_mean

# prefixes that wrap a body's parameter names in common checkpoints (DataParallel, torchvision
# DeepLabv3, this package's own backbones)
_PREFIXES = ("module.", "backbone.", "body.", "model.")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FewshotkitError(f"backbone.weights: cannot read '{path}' as a weights file: {exc}") from exc
    for key in ("state_dict", "model", "model_state"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise FewshotkitError(f"backbone.weights: '{path}' holds no state dict")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def load_body_weights(body: nn.Module, path: Path, in_channels: int) -> int:
    """Load matching tensors of a checkpoint into ``body``; returns how many were loaded.

    Wrapping prefixes (``module.``, ``backbone.``, ...) are stripped; a 3-channel first convolution
    is adapted to a 1-channel body (timm's ``adapt_input_conv``); classifier heads are ignored.
    """
    from timm.models import adapt_input_conv

    target = body.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in _read_state_dict(path).items():
        name = key
        while name not in target and name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        if name not in target:
            continue
        if value.ndim == 4 and target[name].ndim == 4 and value.shape[1] != target[name].shape[1]:
            value = adapt_input_conv(in_channels, value)
        if value.shape == target[name].shape:
            loaded[name] = value
    if len(loaded) < len(target) // 2:
        raise FewshotkitError(
            f"backbone.weights: '{path}' matches only {len(loaded)} of {len(target)} tensors of this "
            "backbone; pass weights of the same architecture (a timm/torchvision checkpoint of the model)"
        )
    body.load_state_dict(loaded, strict=False)
    return len(loaded)


class TimmBackbone(Backbone):
    """A timm CNN body (``features_only``, deepest feature level) followed by a 1x1 convolution.

    The body runs at ``output_stride`` (dilated last stages) when the model supports it, else at
    its natural stride. Weights come only from a local file (``weights``): there is no network.

    Options:
        model: timm model name (any CNN with ``features_only``), e.g. resnet50, convnext_tiny.
        out_channels: C, the feature dimension after the 1x1 projection.
        in_channels: 1 or 3 input channels (a 1-channel slice is tiled for 3).
        output_stride: 8, 16 or 32, when the model supports dilation (else its natural stride).
        weights: a local weights file (.pth/.pt/.safetensors) for the body; prefixes are stripped.
        pretrained: must come with ``weights``: nothing is downloaded.
    """

    def __init__(
        self,
        model: str = "resnet18",
        out_channels: int = 256,
        in_channels: int = 3,
        output_stride: int = 8,
        weights: str | None = None,
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        import timm

        if in_channels not in (1, 3):
            raise FewshotkitError(f"option 'backbone.in_channels' must be 1 or 3, got {in_channels!r}")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise FewshotkitError(f"option 'backbone.out_channels' must be a positive integer, got {out_channels!r}")
        if output_stride not in (8, 16, 32):
            raise FewshotkitError(f"option 'backbone.output_stride' must be 8, 16 or 32, got {output_stride!r}")
        if pretrained and not weights:
            raise FewshotkitError(
                "option 'backbone.pretrained': weights cannot be downloaded here; download the "
                f"'{model}' weights elsewhere and pass the file with backbone.weights=PATH"
            )
        known = timm.list_models()
        if model not in known:
            raise FewshotkitError(
                f"option 'backbone.model': timm has no model '{model}'.{did_you_mean(model, known, n=3)} "
                "List them with python -c \"import timm; print(timm.list_models('resnet*'))\""
            )
        path = None
        if weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FewshotkitError(f"option 'backbone.weights': file '{path}' does not exist")
        kwargs = dict(features_only=True, pretrained=False, in_chans=in_channels)
        try:
            body = timm.create_model(model, output_stride=output_stride, **kwargs)
        except Exception:  # the model has no dilated variant: keep its natural stride
            try:
                body = timm.create_model(model, **kwargs)
            except Exception as exc:
                raise FewshotkitError(
                    f"option 'backbone.model': timm model '{model}' cannot be a feature extractor: {exc}"
                ) from exc
        if path is not None:
            load_body_weights(body, path, in_channels)
        self.body = body
        self.model_name = model
        self.in_channels = in_channels
        self.stride = int(body.feature_info.reduction()[-1])
        self.proj = nn.Conv2d(int(body.feature_info.channels()[-1]), out_channels, 1, bias=False)
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, in_channels, H, W) -> features (B, out_channels, H / stride, W / stride)."""
        return self.proj(self.body(images)[-1])


def deeplab_resnet101(
    out_channels: int = 256, in_channels: int = 3, weights: str | None = None, levels: int = 1
) -> Backbone:
    """The paper's backbone: ResNet-101 body dilated to output stride 8 (DeepLabv3 without ASPP),
    then a bias-free 1x1 conv 2048 -> 256 (256 x 32 x 32 features for a 256 x 256 slice).

    ``weights``: a local torchvision ``deeplabv3_resnet101`` (COCO) or ResNet-101 checkpoint.
    ``levels=2``: Q-Net's form, which also hands out a finer level: layer3 at stride 4 (64 x 64 at
    256 px) beside layer4 at stride 8, each through its own 1x1 conv
    (:class:`~fewshotkit_timm.dual.DualLevelResNet101`).
    """
    if levels not in (1, 2) or isinstance(levels, bool):
        raise FewshotkitError(f"option 'backbone.levels' must be 1 or 2, got {levels!r}")
    if levels == 2:
        from fewshotkit_timm.dual import DualLevelResNet101

        return DualLevelResNet101(out_channels, in_channels, weights)
    return TimmBackbone("resnet101", out_channels, in_channels, 8, weights)
