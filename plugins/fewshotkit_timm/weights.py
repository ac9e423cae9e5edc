"""Loading a weights file into a backbone's body: prefixes stripped, the first convolution adapted to
the input channels, and a refusal when too few of the body's tensors match (no silent random start).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fewshotkit import FewshotkitError

#: the least fraction of a body's tensors (parameters and buffers) a weights file must fill: below it
#: the file is for another architecture, and training would start from random weights
MIN_MATCH = 0.9

# prefixes that wrap a body's parameter names in common checkpoints (DataParallel, torchvision
# DeepLabv3, this package's own backbones)
_PREFIXES = ("module.", "backbone.", "body.", "model.")


def read_state_dict(path: Path, option: str = "backbone.weights") -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.pt``/``.bin``/``.safetensors`` file (unwrapping ``state_dict``,
    ``model``, ``model_state``)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path))
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unsafe pickle, a zip error, a bad safetensors header ... (many types)
        raise FewshotkitError(f"{option}: cannot read '{path}' as a weights file ({type(exc).__name__}): only "
                              "tensors and plain data are loaded, never pickled code; give a state dict saved with "
                              "torch.save, or a .safetensors file") from None
    for key in ("state_dict", "model", "model_state"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise FewshotkitError(f"{option}: '{path}' holds no state dict")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_body_weights(body: nn.Module, path: Path, in_channels: int, option: str = "backbone.weights",
                      convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None) -> int:
    """Load the matching tensors of the file at ``path`` into ``body``; returns how many were loaded.

    Wrapping prefixes (``module.``, ``backbone.``, ...) are stripped; ``convert`` (e.g. timm's
    checkpoint filter, which resamples a ViT's position embedding) then maps the names and shapes to
    the body's; a 3-channel first convolution is adapted to a 1-channel body (timm's
    ``adapt_input_conv``); classifier heads are ignored. Fewer than :data:`MIN_MATCH` of the body's
    tensors matched is an error naming the file.
    """
    from timm.models import adapt_input_conv

    target = body.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key, value in read_state_dict(path, option).items():
        name = key
        while name not in target and name.startswith(_PREFIXES):
            name = name.split(".", 1)[1]
        state[name] = value
    if convert is not None:
        state = convert(state)
    loaded: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name not in target:
            continue
        stem = value.ndim == 4 and target[name].ndim == 4 and value.shape[1] == 3 and target[name].shape[1] == in_channels
        if stem and in_channels != 3:  # an RGB stem (other layers of another architecture just do not match)
            value = adapt_input_conv(in_channels, value)
        if value.shape == target[name].shape:
            loaded[name] = value
    if len(loaded) < MIN_MATCH * len(target):
        raise FewshotkitError(
            f"{option}: '{path}' fills only {len(loaded)} of the {len(target)} tensors of this backbone "
            f"(at least {MIN_MATCH:.0%} must match); pass weights of the same architecture (a timm/torchvision "
            "checkpoint of the model)"
        )
    body.load_state_dict(loaded, strict=False)
    return len(loaded)


def initial_weights(body: nn.Module, model: str, in_channels: int, weights: str | None, pretrained: str | None,
                    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
                    ) -> dict[str, Any] | None:
    """Load ``backbone.weights`` (a file) or ``backbone.pretrained`` (a hub's weights for the timm
    model ``model``) into ``body``; returns what run.json records of them (None: random weights, or
    a method rebuilt for a checkpoint's weights: :func:`~fewshotkit.interfaces.backbone.without_initial_weights`)."""
    from fewshotkit.interfaces.backbone import initial_weights_wanted

    if (not weights and not pretrained) or not initial_weights_wanted():
        return None
    if weights:
        path, option, source = Path(weights).expanduser(), "backbone.weights", "file"
        if not path.is_file():
            raise FewshotkitError(f"option 'backbone.weights': file '{path}' does not exist")
    else:
        from fewshotkit_timm.hubs import resolve

        hub = resolve(model, str(pretrained))
        path, option, source = hub.fetch(), f"backbone.pretrained={pretrained}", hub.source
    matched = load_body_weights(body, path, in_channels, option, convert)
    return {"source": source, "file": str(path), "sha256": file_sha256(path), "matched": matched,
            "tensors": len(body.state_dict())}


def check_channels(in_channels: int, out_channels: int) -> None:
    """The channel options every timm backbone checks the same way: 1 or 3 input channels and a
    positive output width."""
    if in_channels not in (1, 3):
        raise FewshotkitError(f"option 'backbone.in_channels' must be 1 or 3, got {in_channels!r}")
    if not isinstance(out_channels, int) or out_channels < 1:
        raise FewshotkitError(f"option 'backbone.out_channels' must be a positive integer, got {out_channels!r}")
