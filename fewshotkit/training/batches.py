"""Sampler samples -> :class:`~fewshotkit.interfaces.method.Episode` batches on the device.

One step = B episodes, 1-way 1-shot, 1 query each. Slices are read in the main process (an
HDF5 slice read is ~0.1-1 ms), moved to the device, resized to the model's image size there
(images bilinear, masks nearest) and augmented there, all views of a step in one batch.

- SSL, 2D pseudolabel set: support = (slice, superpixel mask); query = the same slice and mask
  through an independent transform.
- SSL, 3D pseudolabel set: support and query are two adjacent slices of one supervoxel
  (``query_image``/``query_mask`` of the sample), each through its own transform.
- supervised: support and query are two annotated slices of different scans, each augmented.

With ``aug.zoom_p`` > 0 an episode may first be cropped to a window around its support mask, every
slice of it alike (the query of another scan at the same fractions of the slice), before resizing.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.episodes.sampling import Sampler
from fewshotkit.evaluation.zoom import window_slices, zoom_window
from fewshotkit.interfaces.method import Episode
from fewshotkit.training.augment import Augmenter
from fewshotkit.training.config import TrainingConfig

if TYPE_CHECKING:
    from fewshotkit.data.episodes.folds import Fold
    from fewshotkit.data.store.reader import SliceStore


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


def sample_record(sample: Any) -> dict[str, Any]:
    """The non-pixel, non-None fields of a sample (volume, z, segment / class ...), JSON-ready."""
    out = {}
    for f in dataclasses.fields(sample):
        value = getattr(sample, f.name)
        if value is None or isinstance(value, np.ndarray):
            continue
        out[f.name] = value.item() if isinstance(value, np.generic) else value
    return out


class EpisodeBatcher:
    """Draws ``batch_size`` episodes per call from ``sampler`` and builds the augmented batch.

    ``regime``: "ssl" (samples with ``image``/``mask``) or "supervised" (samples with
    ``support_image``/``support_mask``/``query_image``/``query_mask``).
    """

    def __init__(
        self,
        sampler: Sampler,
        regime: str,
        image_size: int | Sequence[int],
        augmenter: Augmenter,
        device: torch.device,
        batch_size: int = 1,
    ) -> None:
        self.sampler = sampler
        self.regime = regime
        self.size = _size(image_size)
        self.augmenter = augmenter
        self.device = device
        self.batch_size = batch_size

    def _to_device(self, arrays: list[np.ndarray], is_mask: bool) -> torch.Tensor:
        """List of (H_i, W_i) arrays -> float (N, 1, H, W) at the model's size on the device."""
        out = []
        for array in arrays:
            t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            t = t.to(self.device, non_blocking=True)[None, None]
            if tuple(t.shape[-2:]) != self.size:
                if is_mask:
                    t = F.interpolate(t, size=self.size, mode="nearest-exact")
                else:
                    t = F.interpolate(t, size=self.size, mode="bilinear", align_corners=False)
            out.append(t)
        return torch.cat(out)

    def _zoom(self, sample: Any, rng: np.random.Generator) -> Any:
        """With probability ``aug.zoom_p``, ``sample`` with every slice cropped to one window around
        its support mask (``aug.zoom_margin``), as the support zoom crops an evaluation episode."""
        aug = self.augmenter.config
        if not aug.enabled or aug.zoom_p <= 0 or rng.random() >= aug.zoom_p:
            return sample
        support = sample.mask if self.regime == "ssl" else sample.support_mask
        window = zoom_window(support, float(rng.uniform(*aug.zoom_margin)))
        if window is None:
            return sample
        cropped = {}
        for f in dataclasses.fields(sample):
            value = getattr(sample, f.name)
            if isinstance(value, np.ndarray) and value.ndim == 2:
                rows, cols = window_slices(window, value.shape)
                cropped[f.name] = value[rows, cols]
        return dataclasses.replace(sample, **cropped)

    def next(self, rng: np.random.Generator) -> tuple[Episode, list[dict[str, Any]]]:
        """One step's batch and a record (volume, z, ...) per episode."""
        samples = [self._zoom(self.sampler.sample(rng), rng) for _ in range(self.batch_size)]
        if self.regime == "ssl":
            images = self._to_device([s.image for s in samples], False)
            masks = self._to_device([s.mask for s in samples], True)
            if samples[0].query_image is None:  # 2D set: the query is the support slice
                images, masks = torch.cat([images, images]), torch.cat([masks, masks])
            else:  # 3D set: the query is another slice of the same supervoxel
                images = torch.cat([images, self._to_device([s.query_image for s in samples], False)])
                masks = torch.cat([masks, self._to_device([s.query_mask for s in samples], True)])
        else:
            images = self._to_device([s.support_image for s in samples] + [s.query_image for s in samples], False)
            masks = self._to_device([s.support_mask for s in samples] + [s.query_mask for s in samples], True)
        images, augmented = self.augmenter(images, masks)
        assert augmented is not None
        masks = augmented
        b = self.batch_size
        support_mask = masks[:b]
        episode = Episode(
            support_images=images[:b, None],  # (B, 1, 1, H, W)
            support_masks=torch.cat([1 - support_mask, support_mask], 1)[:, None],  # (B, 1, 2, H, W)
            query_images=images[b:, None],  # (B, 1, 1, H, W)
            query_labels=masks[b:, 0].long()[:, None],  # (B, 1, H, W)
        )
        return episode, [sample_record(s) for s in samples]


def build_sampler(store: "SliceStore", fold: "Fold", setting: int, excluded: list[int], config: TrainingConfig,
                   pseudolabels: str | None, exclusion: str = "any") -> tuple[Any, dict[str, Any]]:
    """The episode sampler of ``config.regime`` over the fold's training slices (setting 2 drops the
    slices showing the excluded classes by the ``exclusion`` rule) and what run.json records about it."""
    from fewshotkit.data.episodes.filters import allowed_slices
    from fewshotkit.data.episodes.sampling import AnnotatedSampler, SelfSupervisedSampler

    slices = allowed_slices(store, fold.train, excluded if setting == 2 else (), exclusion)
    if not slices:
        raise FewshotkitError(
            f"no training slice is left in '{store.path}' for fold {fold.index} after removing the excluded classes"
        )
    info: dict[str, Any] = {"train_slices": len(slices), **({"exclusion": exclusion} if setting == 2 else {})}
    if config.regime == "ssl":
        set_name = store.resolve_pseudolabel_set(pseudolabels)
        info["pseudolabel_set"] = set_name
        return SelfSupervisedSampler(store, set_name, slices, min_segment_size=config.min_segment_size), info
    classes = [c for c in store.class_values if c not in excluded]
    if not classes:
        raise FewshotkitError("--exclude removes every class of the store: nothing is left to train on")
    info["train_classes"] = [store.classes[c] for c in classes]
    return AnnotatedSampler(store, slices, classes, min_pixels=config.min_pixels), info
