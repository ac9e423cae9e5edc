"""Built-in plugin: backbones (any timm CNN, the paper's dilated ResNet-101, a timm ViT such as DINOv2, a
light CPU encoder) and their weights from files or the hubs' caches."""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_backbones(register):
    register(
        "timm",
        "fewshotkit_timm.backbones:TimmBackbone",
        description="any timm CNN (features_only, output stride 8 where supported) + 1x1 conv; local weights",
    )
    register(
        "deeplab-resnet101",
        "fewshotkit_timm.backbones:deeplab_resnet101",
        description="the paper's ResNet-101 body at output stride 8 + 1x1 conv to 256 (256x32x32 at 256px)",
    )
    register(
        "vit",
        "fewshotkit_timm.vit:ViTBackbone",
        description="a timm ViT (default DINOv2 ViT-S/14) as a patch-grid feature map (stride = patch) + 1x1 conv",
    )
    register(
        "light",
        "fewshotkit_timm.light:LightEncoder",
        description="~1.1 M-parameter dilated residual GroupNorm encoder for CPU training from scratch",
    )
