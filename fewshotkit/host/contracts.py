"""Run-time contract checks: a composed method checks its parts' outputs once, on its first forward.

The contract tests (``tests/test_contracts.py``) check every registered component before it is
used; these checks catch what a plugin does at run time with real shapes (a pooler returning
``(C,)`` vectors, a backbone whose output stride or channels differ from what it declares) and turn
what would be an obscure ``IndexError`` deep in the method, or silently wrong features, into one
line naming the component, its plugin and what was expected. Each check looks at shapes only, so
it costs nothing next to the forward pass.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.host.registry import describe


class ContractError(FewshotkitError):
    """A component's output does not match its interface."""


def _shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return str(tuple(value.shape))
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_shape(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"{type(value).__name__} of {len(value)} [{inner}]"
    return type(value).__name__


def _near(size: int, full: int, stride: int) -> bool:
    """``size`` is ``full / stride`` rounded either way (convolutions round odd sizes differently)."""
    return math.floor(full / stride) <= size <= math.ceil(full / stride)


def check_features(backbone: Any, images: torch.Tensor, features: Any) -> None:
    """``images`` (B, in_channels, H, W) must give ``features`` (B, out_channels, H / stride, W / stride)
    with the ``out_channels`` and ``stride`` the backbone declares."""
    who = describe(backbone, "backbone")
    B, _, H, W = images.shape
    channels, stride = getattr(backbone, "out_channels", None), getattr(backbone, "stride", None)
    if not isinstance(channels, int) or not isinstance(stride, int) or stride < 1:
        raise ContractError(f"{who} must set integer attributes out_channels and stride >= 1 in __init__ "
                            f"(got out_channels={channels!r}, stride={stride!r})")
    expected = f"({B}, {channels}, {math.ceil(H / stride)}, {math.ceil(W / stride)})"
    if not isinstance(features, torch.Tensor) or features.ndim != 4 or features.shape[0] != B:
        raise ContractError(f"{who} returned {_shape(features)} for a {tuple(images.shape)} batch; "
                            f"expected features {expected}")
    _, C, h, w = features.shape
    if C != channels or not (_near(h, H, stride) and _near(w, W, stride)):
        actual = f"{C} channels at stride {H / h:g}" if h else f"{C} channels"
        raise ContractError(
            f"{who} declares out_channels={channels} and stride={stride}, so a {tuple(images.shape)} batch "
            f"should give {expected} features, but it gave {tuple(features.shape)} ({actual}); make its "
            "out_channels / stride attributes match what forward returns"
        )


def check_prototypes(pooler: Any, prototypes: Any, classes: int, channels: int) -> None:
    """``prototypes`` must be ``classes`` tensors (P_c, ``channels``) with P_c >= 1."""
    expected = f"a list of {classes} tensors (P_c, {channels}), one per class (background first), P_c >= 1"
    ok = isinstance(prototypes, (list, tuple)) and len(prototypes) == classes and all(
        isinstance(p, torch.Tensor) and p.ndim == 2 and p.shape[0] >= 1 and p.shape[1] == channels
        for p in prototypes
    )
    if not ok:
        raise ContractError(f"{describe(pooler, 'pooler')} returned {_shape(prototypes)}; expected {expected}")


def check_scores(classifier: Any, scores: Any, queries: int, classes: int, size: tuple[int, int]) -> None:
    """``scores`` must be logits (Q, N + 1, h, w) at the feature size."""
    expected = (queries, classes, *size)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != expected:
        raise ContractError(f"{describe(classifier, 'classifier')} returned {_shape(scores)}; expected logits "
                            f"{expected} (queries, classes, feature height, feature width)")
