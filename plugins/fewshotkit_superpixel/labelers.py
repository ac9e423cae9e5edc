"""Superpixel pseudolabelers wrapping scikit-image, with the reference body mask."""

from __future__ import annotations

import numbers

import numpy as np
from skimage import segmentation

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.pseudolabeler import PseudoLabeler

from fewshotkit_superpixel.body_mask import body_mask


def _require(labeler: str, option: str, value: object, rule: str, *, integer: bool = False, low: float = 0.0,
             strict: bool = False) -> None:
    """A one-line error unless ``value`` is a finite number (an integer with ``integer``) >= / > ``low``."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if integer:
        number = number and isinstance(value, numbers.Integral)
    if not (number and np.isfinite(value) and (value > low if strict else value >= low)):  # type: ignore[operator]
        raise FewshotkitError(f"option '{option}' of pseudolabeler '{labeler}' must be {rule}, got {value!r}")


class _BodyMaskedSuperpixels(PseudoLabeler):
    ndim = 2

    def __init__(self, use_body_mask: bool = True, body_threshold: float | None = None) -> None:
        if body_threshold is not None:
            _require(self._name(), "body_threshold", body_threshold, "a finite number or none", low=-np.inf)
        self.use_body_mask = use_body_mask
        self.body_threshold = body_threshold

    def _name(self) -> str:
        return type(self).__name__.lower()  # the registered names: felzenszwalb, slic

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
        _require(self._name(), "scale", scale, "a number > 0", strict=True)
        _require(self._name(), "sigma", sigma, "a number >= 0")
        _require(self._name(), "min_size", min_size, "an integer >= 0", integer=True)
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
        _require(self._name(), "n_segments", n_segments, "an integer >= 1", integer=True, low=1)
        _require(self._name(), "compactness", compactness, "a number > 0", strict=True)
        _require(self._name(), "sigma", sigma, "a number >= 0")
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
