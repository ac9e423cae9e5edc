"""Running a trained :class:`~fewshotkit.interfaces.method.Method` as a protocol predictor.

Slices are resized to the method's ``image_size`` (bilinear; support masks bilinear too, so
they stay soft in [0, 1] as the pooler contract allows), the logits are resized back to the
slice size (bilinear) and the foreground is where its softmax probability beats the background's
(argmax of the 1-way softmax). Query slices go through the model in batches sharing one support.
Several classes can share one forward pass (an N-way episode, :meth:`MethodPredictor.class_probabilities`)
unless the method sets ``multiway = False``. With ``mirror`` (the spec's ``test_mirror``) the
softmax is averaged with that of the whole episode mirrored left-right (support, masks and query
flipped together, the output flipped back), the test-time mirroring of nnU-Net: twice the work.
With ``fg_threshold`` t (the spec's; 0.5 by default) the background's logit is raised by
log(t / (1 - t)) before the softmax, a prior shift: a 1-way foreground then needs a softmax above t,
and every consumer (the 0.5 cut, the N-way argmax, the orientation search) applies it alike.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from fewshotkit.core.errors import FewshotkitError


def _as_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:  # the method takes slices at their own size
        return None
    if isinstance(image_size, (tuple, list)):
        return int(image_size[0]), int(image_size[1])
    return int(image_size), int(image_size)


def _batch_size(value: Any) -> int:
    """``value`` as a batch size, or a one-line error unless it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise FewshotkitError(f"batch_size (--batch-size) must be a whole number >= 1, got {value!r}")
    return int(value)


class MethodPredictor:
    """Callable ``(support_images (S, H, W), support_masks (S, H, W) bool, query_images (Q, H, W))
    -> foreground (Q, H, W) bool`` backed by ``method`` in eval mode on ``device``."""

    def __init__(self, method: Any, image_size: Any, device: Any = "cpu", batch_size: int = 16,
                 mirror: bool = False, fg_threshold: float = 0.5) -> None:
        import torch

        self.method = method
        self.size = _as_size(image_size)
        self.device = torch.device(device)
        self.batch_size = _batch_size(batch_size)
        self.mirror = mirror
        if not 0 < fg_threshold < 1:
            raise FewshotkitError(f"fg_threshold must be a probability in (0, 1), got {fg_threshold!r}")
        self.bg_shift = math.log(fg_threshold / (1 - fg_threshold))  # 0 at 0.5: the plain softmax

    def _resize(self, array: np.ndarray) -> "Any":
        """(N, H, W) numpy -> float tensor (1, N, 1, h, w) on the device at the model's size."""
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)[:, None]
        if self.size is not None and tuple(t.shape[-2:]) != self.size:
            t = F.interpolate(t, size=self.size, mode="bilinear", align_corners=False)
        return t[None]

    @property
    def multiway(self) -> bool:
        """Whether the method segments several classes in one N-way forward pass."""
        return bool(getattr(self.method, "multiway", True))

    def class_probabilities(self, support_images: np.ndarray, support_masks: np.ndarray,
                            query_images: np.ndarray) -> np.ndarray:
        """N-way softmax (Q, N + 1, H, W) float32, background first, at the query slices' own size.

        ``support_masks`` (S, N, H, W): one (soft or bool) mask per foreground class.
        """
        out = self._softmax(support_images, support_masks, query_images)
        if self.mirror:
            flipped = self._softmax(support_images[..., ::-1], support_masks[..., ::-1], query_images[..., ::-1])
            out = (out + flipped[..., ::-1]) / 2
        return out

    def _softmax(self, support_images: np.ndarray, support_masks: np.ndarray, query_images: np.ndarray) -> np.ndarray:
        """One N-way pass of :meth:`class_probabilities` (no mirroring)."""
        import torch
        import torch.nn.functional as F

        from fewshotkit.interfaces.method import Episode

        H, W = query_images.shape[-2:]
        S, N = support_masks.shape[:2]
        sup = self._resize(support_images)
        fg = self._resize(support_masks.reshape(S * N, *support_masks.shape[2:]).astype(np.float32))
        fg = fg.reshape(1, S, N, *fg.shape[-2:]).clamp_(0, 1)
        masks = torch.cat([(1 - fg.sum(dim=2, keepdim=True)).clamp_(0, 1), fg], dim=2)  # (1, S, N + 1, h, w)
        out = np.empty((query_images.shape[0], N + 1, H, W), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, query_images.shape[0], self.batch_size):
                batch = query_images[start : start + self.batch_size]
                logits = self.method(Episode(sup, masks, self._resize(batch))).logits[0]  # (q, N + 1, h, w)
                if tuple(logits.shape[-2:]) != (H, W):
                    logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
                logits = logits.float()
                if self.bg_shift:
                    logits[:, 0] += self.bg_shift
                out[start : start + batch.shape[0]] = torch.softmax(logits, dim=1).cpu().numpy()
        return out

    def probabilities(self, support_images: np.ndarray, support_masks: np.ndarray,
                      query_images: np.ndarray) -> np.ndarray:
        """Foreground probability (Q, H, W) float32 at the query slices' own size (1-way)."""
        return self.class_probabilities(support_images, support_masks[:, None], query_images)[:, 1]

    def __call__(self, support_images: np.ndarray, support_masks: np.ndarray, query_images: np.ndarray) -> np.ndarray:
        return self.probabilities(support_images, support_masks, query_images) > 0.5


def predictor_for(method: Any, spec: Any, device: Any = "cpu", batch_size: int = 16) -> Any:
    """The predictor of ``method`` (in eval mode) with its ``spec``'s size, ``test_mirror`` and ``fg_threshold``: a
    :class:`MethodPredictor`, inside the support's window when the spec sets ``support_zoom``
    (:class:`~fewshotkit.evaluation.zoom.SupportZoom`)."""
    from fewshotkit.evaluation.zoom import SupportZoom

    predictor = MethodPredictor(method, spec.image_size, device, batch_size, mirror=getattr(spec, "test_mirror", False),
                                fg_threshold=getattr(spec, "fg_threshold", 0.5))
    zoom = getattr(spec, "support_zoom", None)
    return predictor if zoom is None else SupportZoom(predictor, zoom)
