"""A Vision Transformer backbone: a timm ViT's last block as a feature map (foundation features such
as DINOv2's), one feature per patch."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.core.userinput import did_you_mean
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit_timm.hubs import listing
from fewshotkit_timm.weights import check_channels, initial_weights


class ViTBackbone(Backbone):
    """The patch tokens of a timm ViT's last block (after its final norm) as a (B, C, h, w) map,
    followed by a 1x1 convolution. The stride is the patch size: a 256 x 256 slice through DINOv2's
    14-pixel patches gives 19 x 19 features (the input is padded to a multiple of the patch). Any
    input size works: the position embedding is resampled to the patch grid.

    Options:
        model: a timm ViT name, e.g. vit_small_patch14_dinov2 (DINOv2 ViT-S/14, 384 channels).
        out_channels: C, the feature dimension after the 1x1 projection.
        in_channels: 1 or 3 input channels (a 1-channel slice is tiled for 3).
        weights: a local weights file (.pth/.safetensors): timm's or the model's original release.
        pretrained: hub weights: imagenet (timm's default weights of the model; for DINOv2 its
            LVD-142M pretraining) or a timm tag (lvd142m); list them with fewshotkit weights.
    """

    def __init__(
        self,
        model: str = "vit_small_patch14_dinov2",
        out_channels: int = 256,
        in_channels: int = 3,
        weights: str | None = None,
        pretrained: str | bool | None = None,
    ) -> None:
        super().__init__()
        import timm
        from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

        check_channels(in_channels, out_channels)
        pretrained = "imagenet" if pretrained is True else (pretrained or None)
        if pretrained and weights:
            raise FewshotkitError("options 'backbone.weights' and 'backbone.pretrained': give one of them, not both")
        known = timm.list_models("vit_*")
        if model not in known:
            raise FewshotkitError(f"option 'backbone.model': timm has no ViT '{model}'.{did_you_mean(model, known, n=3)}")
        body = timm.create_model(model, pretrained=False, num_classes=0, in_chans=in_channels,
                                 dynamic_img_size=True, dynamic_img_pad=True)
        if not isinstance(body, VisionTransformer):
            raise FewshotkitError(f"option 'backbone.model': '{model}' is not a plain ViT (timm VisionTransformer)")
        self.weights_source = initial_weights(body, model, in_channels, weights, pretrained and str(pretrained),
                                              convert=lambda state: checkpoint_filter_fn(state, body))
        self.body = body
        self.model_name = model
        self.in_channels = in_channels
        patch = body.patch_embed.patch_size
        if patch[0] != patch[1]:
            raise FewshotkitError(f"option 'backbone.model': '{model}' has non-square patches {patch}")
        self.stride = int(patch[0])
        self.proj = nn.Conv2d(int(body.embed_dim), out_channels, 1, bias=False)
        self.out_channels = out_channels

    @staticmethod
    def available_weights(model: str | None = None) -> list[dict[str, Any]]:
        """What ``pretrained`` can load for ``model`` (default vit_small_patch14_dinov2) and whether it is cached."""
        return listing(model or "vit_small_patch14_dinov2")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, in_channels, H, W) -> features (B, out_channels, ceil(H / stride), ceil(W / stride))."""
        (tokens,) = self.body.forward_intermediates(images, indices=1, norm=True, output_fmt="NCHW",
                                                    intermediates_only=True)
        return self.proj(tokens)
