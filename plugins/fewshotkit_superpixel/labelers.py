"""Superpixel pseudolabelers wrapping scikit-image, with the reference body mask."""

from __future__ import annotations

import numpy as np
from skimage import segmentation

from fewshotkit.errors import FewshotkitError
from fewshotkit.interfaces.pseudolabeler import PseudoLabeler

from fewshotkit_superpixel.body_mask import body_mask


class _BodyMaskedSuperpixels(PseudoLabeler):
    ndim = 2

    def __init__(self, use_body_mask: bool = True, body_threshold: float | None = None) -> None:
        self.use_body_mask = use_body_mask
        self.body_threshold = body_threshold

    def _segments(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, image: np.ndarray, spacing=None) -> np.ndarray:
        """``image`` float (H, W) -> int32 (H, W): 0 outside the body, segments 1..K."""
        image = np.asarray(image, dtype=np.float64)
        if image.ndim != 2:
            raise FewshotkitError(f"{type(self).__name__} takes 2D slices, got shape {image.shape}")
        if not np.isfinite(image).all():
            raise FewshotkitError("the slice contains NaN or infinite values; fix the store (fewshotkit store check)")
        labels = self._segments(image).astype(np.int32) + 1  # skimage ids may start at 0
        if self.use_body_mask:
            labels[~body_mask(image, self.body_threshold)] = 0
        relabelled, _, _ = segmentation.relabel_sequential(labels)
        return relabelled.astype(np.int32)


class Felzenszwalb(_BodyMaskedSuperpixels):
    """Felzenszwalb-Huttenlocher graph segmentation (the SSL-ALPNet pseudolabels).

    ``scale`` and ``sigma`` as in :func:`skimage.segmentation.felzenszwalb`; ``min_size`` is
    the smallest segment in pixels (400 in the paper; 100 and 1600 in its ablation).
    """

    def __init__(
        self,
        scale: float = 1.0,
        sigma: float = 1.0,
        min_size: int = 400,
        use_body_mask: bool = True,
        body_threshold: float | None = None,
    ) -> None:
        super().__init__(use_body_mask, body_threshold)
        self.scale = scale
        self.sigma = sigma
        self.min_size = min_size

    def _segments(self, image: np.ndarray) -> np.ndarray:
        return segmentation.felzenszwalb(image, scale=self.scale, sigma=self.sigma, min_size=self.min_size)


class Slic(_BodyMaskedSuperpixels):
    """SLIC superpixels on the grey-level slice (``n_segments`` targets, ``compactness``)."""

    def __init__(
        self,
        n_segments: int = 100,
        compactness: float = 0.1,
        sigma: float = 1.0,
        use_body_mask: bool = True,
        body_threshold: float | None = None,
    ) -> None:
        super().__init__(use_body_mask, body_threshold)
        self.n_segments = n_segments
        self.compactness = compactness
        self.sigma = sigma

    def _segments(self, image: np.ndarray) -> np.ndarray:
        span = float(image.max() - image.min()) or 1.0
        scaled = (image - image.min()) / span  # compactness is relative to intensity range
        return segmentation.slic(
            scaled,
            n_segments=self.n_segments,
            compactness=self.compactness,
            sigma=self.sigma,
            channel_axis=None,
            start_label=0,
        )
