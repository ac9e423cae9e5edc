"""Episode samplers (numpy; the training loop augments on the model's device) and a seeded stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.reader import SliceStore


@dataclass
class SelfSupervisedSample:
    """``image`` float32 (H, W) model input; ``mask`` bool (H, W) of one pseudolabel segment.

    From a 3D (supervoxel) set, ``query_image``/``query_mask`` (H, W) are another slice
    ``query_z`` of the same supervoxel; from a 2D set they are None and the query is the
    support slice itself, augmented independently.
    """

    image: np.ndarray
    mask: np.ndarray
    volume: str
    z: int
    segment: int
    query_image: np.ndarray | None = None
    query_mask: np.ndarray | None = None
    query_z: int | None = None


class SelfSupervisedSampler:
    """Self-supervised samples from a pseudolabel set; the mode follows the set's ``ndim``.

    2D set: a slice uniformly among ``slices``, then one of its segments of >= ``min_segment_size``
    pixels uniformly. 3D set (supervoxels, as ADNet): a supervoxel uniformly among those that
    cover two adjacent allowed slices with >= ``min_segment_size`` pixels each, one such pair
    uniformly, and which of the two is the support uniformly; supervoxels without such a pair
    (e.g. one slice thick) are never drawn.
    """

    def __init__(self, store: SliceStore, pseudolabel_set: str, slices: Sequence[tuple[str, int]],
                 min_segment_size: int = 100) -> None:
        self.store = store
        self.pseudolabel_set = store.resolve_pseudolabel_set(pseudolabel_set)
        self.min_segment_size = min_segment_size
        self.ndim = int(store.pseudolabel_set_attrs(self.pseudolabel_set).get(fmt.SET_NDIM, 2))
        # 2D: (volume, z, eligible segment ids); 3D: (volume, supervoxel id, first z of each pair)
        self.entries: list[tuple[str, int, np.ndarray]] = []
        by_volume: dict[str, list[int]] = {}
        for vol, z in slices:
            by_volume.setdefault(vol, []).append(int(z))
        for vol, zs in by_volume.items():
            labels = store.pseudolabel(self.pseudolabel_set, vol)
            if self.ndim == 3:
                self.entries.extend((vol, seg, starts) for seg, starts in _adjacent_pairs(labels, zs, min_segment_size))
                continue
            for z in zs:
                sizes = np.bincount(labels[z].ravel())
                sizes[0] = 0  # 0 = unlabelled, never a segment
                ids = np.flatnonzero(sizes >= min_segment_size)
                if ids.size:
                    self.entries.append((vol, z, ids))
        if not self.entries:
            what = (f"supervoxel with >= {min_segment_size} pixels on each of two adjacent allowed slices"
                    if self.ndim == 3 else f"slice with a pseudolabel segment of >= {min_segment_size} pixels")
            raise FewshotkitError(
                f"'{store.path}' has no {what} in set '{self.pseudolabel_set}' among the {len(slices)} "
                f"allowed slices; lower the minimum segment size (training.min_segment_size)"
            )

    def __len__(self) -> int:
        return len(self.entries)

    def sample(self, rng: np.random.Generator) -> SelfSupervisedSample:
        if self.ndim == 3:
            return self._sample_supervoxel(rng)
        vol, z, ids = self.entries[int(rng.integers(len(self.entries)))]
        segment = int(ids[int(rng.integers(len(ids)))])
        mask = self.store.pseudolabel(self.pseudolabel_set, vol, z) == segment
        return SelfSupervisedSample(self.store.image(vol, z), mask, vol, z, segment)

    def _sample_supervoxel(self, rng: np.random.Generator) -> SelfSupervisedSample:
        vol, segment, starts = self.entries[int(rng.integers(len(self.entries)))]
        first = int(starts[int(rng.integers(len(starts)))])
        sz, qz = (first, first + 1) if rng.integers(2) == 0 else (first + 1, first)
        store, name = self.store, self.pseudolabel_set
        return SelfSupervisedSample(
            image=store.image(vol, sz), mask=store.pseudolabel(name, vol, sz) == segment, volume=vol, z=sz,
            segment=segment, query_image=store.image(vol, qz), query_mask=store.pseudolabel(name, vol, qz) == segment,
            query_z=qz,
        )


def _adjacent_pairs(labels: np.ndarray, zs: Sequence[int], min_size: int) -> list[tuple[int, np.ndarray]]:
    """For supervoxel ids ``labels`` int (Z, H, W): [(id, z of every pair z, z + 1 of ``zs`` on which
    the supervoxel has >= ``min_size`` pixels)] for each id with at least one such pair."""
    n = int(labels.max(initial=0)) + 1
    eligible = np.zeros((labels.shape[0], n), dtype=bool)  # (Z, K + 1): slice z holds enough of id k
    for z in sorted(set(zs)):
        eligible[z] = np.bincount(labels[z].ravel(), minlength=n) >= min_size
    eligible[:, 0] = False  # 0 = unlabelled, never a supervoxel
    pairs = eligible[:-1] & eligible[1:]  # (Z - 1, K + 1)
    return [(int(k), np.flatnonzero(pairs[:, k])) for k in np.flatnonzero(pairs.any(axis=0))]


@dataclass
class AnnotatedSample:
    """Support and query (H, W): images float32, masks bool (label == cls); from different volumes."""

    support_image: np.ndarray
    support_mask: np.ndarray
    query_image: np.ndarray
    query_mask: np.ndarray
    cls: int
    support_volume: str
    query_volume: str
    support_z: int
    query_z: int


class AnnotatedSampler:
    """A class among ``classes``; support and query slices containing it from two different volumes."""

    def __init__(self, store: SliceStore, slices: Sequence[tuple[str, int]], classes: Sequence[int],
                 min_pixels: int = 1) -> None:
        self.store = store
        allowed: dict[str, set[int]] = {}
        for vol, z in slices:
            allowed.setdefault(vol, set()).add(int(z))
        self.index: dict[int, dict[str, np.ndarray]] = {}
        for cls in classes:
            value = store.class_value(cls)
            per_volume = {}
            for vol, zs in allowed.items():
                pixels = store.class_pixels(value, vol)
                found = np.array([z for z in sorted(zs) if pixels[z] >= min_pixels], dtype=np.int64)
                if found.size:
                    per_volume[vol] = found
            if len(per_volume) >= 2:
                self.index[value] = per_volume
        if not self.index:
            names = ", ".join(store.classes.get(store.class_value(c), str(c)) for c in classes)
            raise FewshotkitError(
                f"no class among ({names}) appears in at least two volumes of the allowed slices of '{store.path}'"
            )
        self.classes = sorted(self.index)

    def sample(self, rng: np.random.Generator) -> AnnotatedSample:
        cls = self.classes[int(rng.integers(len(self.classes)))]
        vols = sorted(self.index[cls])
        support_vol = vols[int(rng.integers(len(vols)))]
        others = [v for v in vols if v != support_vol]
        query_vol = others[int(rng.integers(len(others)))]
        sz = int(rng.choice(self.index[cls][support_vol]))
        qz = int(rng.choice(self.index[cls][query_vol]))
        store = self.store
        return AnnotatedSample(
            support_image=store.image(support_vol, sz), support_mask=store.label(support_vol, sz) == cls,
            query_image=store.image(query_vol, qz), query_mask=store.label(query_vol, qz) == cls,
            cls=cls, support_volume=support_vol, query_volume=query_vol, support_z=sz, query_z=qz,
        )


class Sampler(Protocol):
    """What training draws episodes from: one sample per call, from the caller's generator."""

    def sample(self, rng: np.random.Generator) -> Any: ...
