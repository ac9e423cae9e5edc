"""Backbones built on timm: any timm CNN as a dilated feature extractor + a 1x1 projection."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.core.userinput import did_you_mean
from fewshotkit_timm.hubs import listing
from fewshotkit_timm.weights import check_channels, initial_weights


class TimmBackbone(Backbone):
    """A timm CNN body (``features_only``, deepest feature level) followed by a 1x1 convolution.

    The body runs at ``output_stride`` (dilated last stages) when the model supports it, else at
    its natural stride. Its initial weights come from a local file (``weights``) or a hub
    (``pretrained``, through the Hugging Face or torch hub cache; see :mod:`fewshotkit_timm.hubs`).

    Options:
        model: timm model name (any CNN with ``features_only``), e.g. resnet50, convnext_tiny.
        out_channels: C, the feature dimension after the 1x1 projection.
        in_channels: 1 or 3 input channels (a 1-channel slice is tiled for 3).
        output_stride: 8, 16 or 32, when the model supports dilation (else its natural stride).
        weights: a local weights file (.pth/.pt/.safetensors) for the body; prefixes are stripped.
        pretrained: hub weights for the body: imagenet (timm's default), coco (torchvision's DeepLabv3
            body; resnet50, resnet101), a timm tag (tv_in1k) or a torchvision enum; from the cache,
            downloaded unless HF_HUB_OFFLINE=1 (list them: fewshotkit weights).
    """

    def __init__(
        self,
        model: str = "resnet18",
        out_channels: int = 256,
        in_channels: int = 3,
        output_stride: int = 8,
        weights: str | None = None,
        pretrained: str | bool | None = None,
    ) -> None:
        super().__init__()
        import timm

        check_channels(in_channels, out_channels)
        if output_stride not in (8, 16, 32):
            raise FewshotkitError(f"option 'backbone.output_stride' must be 8, 16 or 32, got {output_stride!r}")
        pretrained = "imagenet" if pretrained is True else (pretrained or None)
        if pretrained and weights:
            raise FewshotkitError("options 'backbone.weights' and 'backbone.pretrained': give one of them, not both")
        known = timm.list_models()
        if model not in known:
            raise FewshotkitError(
                f"option 'backbone.model': timm has no model '{model}'.{did_you_mean(model, known, n=3)} "
                "List them with python -c \"import timm; print(timm.list_models('resnet*'))\""
            )
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
        self.weights_source = initial_weights(body, model, in_channels, weights, pretrained and str(pretrained))
        self.body = body
        self.model_name = model
        self.in_channels = in_channels
        self.stride = int(body.feature_info.reduction()[-1])
        self.proj = nn.Conv2d(int(body.feature_info.channels()[-1]), out_channels, 1, bias=False)
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, in_channels, H, W) -> features (B, out_channels, H / stride, W / stride)."""
        return self.proj(self.body(images)[-1])

    @staticmethod
    def available_weights(model: str | None = None) -> list[dict[str, Any]]:
        """What ``pretrained`` can load for ``model`` (default resnet18) and whether it is cached."""
        return listing(model or "resnet18")


def deeplab_resnet101(
    out_channels: int = 256, in_channels: int = 3, weights: str | None = None, levels: int = 1,
    pretrained: str | None = None,
) -> Backbone:
    """The paper's backbone: ResNet-101 body dilated to output stride 8 (DeepLabv3 without ASPP),
    then a bias-free 1x1 conv 2048 -> 256 (256 x 32 x 32 features for a 256 x 256 slice).

    ``weights``: a local torchvision ``deeplabv3_resnet101`` (COCO) or ResNet-101 checkpoint;
    ``pretrained``: coco (the paper's torchvision COCO body), imagenet, tv_in1k or another timm tag.
    ``levels=2``: Q-Net's form, which also hands out a finer level: layer3 at stride 4 (64 x 64 at
    256 px) beside layer4 at stride 8, each through its own 1x1 conv
    (:class:`~fewshotkit_timm.dual.DualLevelResNet101`).
    """
    if levels not in (1, 2) or isinstance(levels, bool):
        raise FewshotkitError(f"option 'backbone.levels' must be 1 or 2, got {levels!r}")
    if levels == 2:
        from fewshotkit_timm.dual import DualLevelResNet101

        return DualLevelResNet101(out_channels, in_channels, weights, pretrained)
    return TimmBackbone("resnet101", out_channels, in_channels, 8, weights, pretrained)


deeplab_resnet101.available_weights = lambda model=None: listing("resnet101")  # type: ignore[attr-defined]
