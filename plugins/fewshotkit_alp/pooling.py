"""Adaptive local prototype pooling (ALP, Ouyang et al. 2020, Sec. 3.2, Eq. 1-3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fewshotkit.method.composed import masked_average, resize_masks
from fewshotkit import FewshotkitError
from fewshotkit.interfaces.pooler import PrototypePooler


def local_prototypes(
    features: torch.Tensor, masks: torch.Tensor, window: int, threshold: float
) -> list[torch.Tensor]:
    """Window-averaged features where a class covers more than ``threshold`` of the window.

    Args:
        features: (S, C, h, w); masks: (S, K, h, w) at feature resolution.
        window: L, the side of the non-overlapping L x L pooling window (clipped to h and w).
        threshold: a window is a prototype of class k when its average mask value exceeds it.

    Returns:
        K tensors (P_k, C), P_k >= 0, pooled over all S slices.
    """
    L = max(1, min(window, features.shape[-2], features.shape[-1]))
    pooled_f = F.avg_pool2d(features, L)  # (S, C, h/L, w/L)
    pooled_m = F.avg_pool2d(masks, L)  # (S, K, h/L, w/L)
    vectors = pooled_f.permute(0, 2, 3, 1).reshape(-1, features.shape[1])  # (S*h/L*w/L, C)
    cover = pooled_m.permute(1, 0, 2, 3).reshape(masks.shape[1], -1)  # (K, S*h/L*w/L)
    return [vectors[cover[k] > threshold] for k in range(masks.shape[1])]


class ALPPooler(PrototypePooler):
    """ALP: local prototypes for every class, plus a global masked-average prototype for foreground.

    - Masks are resized to the feature size (bilinear); features and masks are average-pooled with
      an L x L window (``train_window`` in training mode, ``test_window`` otherwise); a window is a
      local prototype of a class when its pooled mask value exceeds ``threshold``.
    - Foreground classes: local prototypes + one global masked-average prototype
      (``local_only=False``). Background: local prototypes only.
    - Fallbacks: a class with no qualifying window gets its global masked-average prototype (the
      reference code crashes when that happens to the background; this does not).

    Options:
        train_window: pooling window L (feature pixels) in training mode.
        test_window: pooling window L at inference.
        threshold: a window is a local prototype when its mean mask value exceeds this (0-1).
        window: one window for both modes (overrides the two above).
        local_only: no global foreground prototype (local prototypes only).
    """

    def __init__(
        self,
        train_window: int = 4,
        test_window: int = 2,
        threshold: float = 0.95,
        window: int | None = None,
        local_only: bool = False,
    ) -> None:
        super().__init__()
        if window is not None:  # one value for both modes
            train_window = test_window = window
        for name, value in (("train_window", train_window), ("test_window", test_window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FewshotkitError(f"option 'pooler.{name}' must be a positive integer, got {value!r}")
        if not 0.0 <= float(threshold) < 1.0:
            raise FewshotkitError(f"option 'pooler.threshold' must be in [0, 1), got {threshold!r}")
        self.train_window = train_window
        self.test_window = test_window
        self.threshold = float(threshold)
        self.local_only = bool(local_only)

    @property
    def window(self) -> int:
        """The pooling window side in the current mode."""
        return self.train_window if self.training else self.test_window

    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        """features (S, C, h, w), masks (S, N + 1, H, W) -> N + 1 tensors (P_c, C), P_c >= 1."""
        masks = resize_masks(masks.to(features.dtype), features.shape[-2:])
        local = local_prototypes(features, masks, self.window, self.threshold)
        glob = masked_average(features, masks)  # (N + 1, C)
        out = []
        for c, protos in enumerate(local):
            if c > 0 and not self.local_only:
                protos = torch.cat([protos, glob[c : c + 1]])
            elif protos.shape[0] == 0:
                protos = glob[c : c + 1]
            out.append(protos)
        return out


def alp_local(train_window: int = 4, test_window: int = 2, threshold: float = 0.95, window: int | None = None) -> ALPPooler:
    """ALP with local prototypes only (global prototype only as a fallback), for every class."""
    return ALPPooler(train_window, test_window, threshold, window, local_only=True)
