"""A fixed-weight model for tests whose assertions depend on what a model predicts.

ALPNet with the light encoder, its weights written by hand instead of trained: the encoder maps
each pixel's z-scored intensity x to "hat" features, feature j = max(0, 1 - |x - c_j| / STEP) for
centres c_j = LOW + (j + 1) STEP, sampled at output stride 8. A pixel's feature vector thus says
which intensity band it lies in, and the ALP prototypes and cosine classifier segment the
intensity bands of the support's class. The synthetic phantoms give each organ its own intensity
(liver dark, spleen bright), so the prediction is known in advance: the liver and the spleen come
out with a Dice far above chance, identical on any CPU and torch build (nothing is random).

How the encoder computes it (batch norm in eval mode is an affine map, set per channel):
the first conv copies the pixel into ``WIDTH`` channels and its norm subtracts threshold
``t_k = LOW + k STEP``, so after the ReLU channel k holds the ramp max(0, x - t_k); every later
conv passes channel k on (centre tap 1), every residual block adds zero (its weights are zero),
and the 1x1 projection forms hat j = (ramp_j - 2 ramp_{j+1} + ramp_{j+2}) / STEP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

STEP, LOW, WIDTH = 0.35, -1.4, 16
OVERRIDES = ["backbone.norm=batch", f"backbone.width={WIDTH}", f"backbone.out_channels={WIDTH - 2}",
             "backbone.output_stride=8"]


def fixed_spec(*overrides: str) -> Any:
    """The ssl-alpnet-cpu preset with the fixed encoder's shape (and ``overrides``)."""
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec

    return apply_overrides(preset_spec("ssl-alpnet-cpu"), [*OVERRIDES, *overrides])


def _affine(norm: nn.BatchNorm2d, shift: torch.Tensor | float = 0.0) -> None:
    """Make ``norm`` (in eval mode) compute ``x - shift`` per channel."""
    norm.reset_running_stats()
    norm.running_mean.fill_(0.0)
    norm.running_mean[: WIDTH] += shift
    norm.running_var.fill_(1.0 - norm.eps)
    norm.weight.data.fill_(1.0)
    norm.bias.data.zero_()


@torch.no_grad()
def set_fixed_weights(method: nn.Module) -> None:
    """Write the hat-feature weights (module docstring) into ``method.backbone``, a light encoder."""
    encoder = method.backbone
    for module in encoder.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.zero_()
        elif isinstance(module, nn.BatchNorm2d):
            _affine(module)
    layers = (encoder.stem[0], encoder.stem[1], encoder.stage2[0], encoder.stage3[0])  # conv, norm, ReLU each
    channels = torch.arange(WIDTH)
    for index, layer in enumerate(layers):
        layer[0].weight[channels, 0 if index == 0 else channels, 1, 1] = 1.0
    _affine(layers[0][1], LOW + STEP * channels.to(torch.float32))
    hats = torch.arange(WIDTH - 2)
    for offset, weight in ((0, 1.0), (1, -2.0), (2, 1.0)):
        encoder.proj.weight[hats, hats + offset, 0, 0] = weight / STEP


def fixed_run(store: Path, out: Path, *overrides: str) -> Path:
    """A run directory at ``out`` holding the fixed-weight model (no training step) for ``store``."""
    from fewshotkit.training.loop import train
    from fewshotkit.training.trainer import HookBase

    class Fix(HookBase):
        def before_train(self) -> None:
            set_fixed_weights(self.trainer.method)

    train(fixed_spec(*overrides), store, out, steps=0, device="cpu", seed=0, show_progress=False, hooks=[Fix()])
    return out
