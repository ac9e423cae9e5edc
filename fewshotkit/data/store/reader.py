"""Reading a slice store: lazy, fork/spawn-safe handle, class-slice index held in memory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.geometry import zhw_to_nifti


class MalformedStoreError(DataError):
    """A fewshotkit store whose metadata (classes, volume list, per-volume records) cannot be read."""


class SliceStore:
    """A read-only view of a store written by ``fewshotkit ingest``.

    The h5py handle is opened on first access in each process (and reopened after a fork), and
    dropped when pickled, so a store can go to DataLoader workers under fork or spawn.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"store '{self.path}' does not exist; create it with `fewshotkit ingest`")
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._datasets: dict[tuple[str, str], h5py.Dataset] = {}
        self.checked_scans: set[str] = set()  # volumes that passed fewshotkit.data.store.check.require_valid_scans
        try:
            handle = self._h5()
        except OSError as exc:
            raise DataError(f"'{self.path}' is not a readable HDF5 store ({exc})") from None
        attrs = handle.attrs
        version = attrs.get(fmt.ATTR_SCHEMA)
        if attrs.get(fmt.ATTR_FORMAT) != fmt.FORMAT_NAME or version is None:
            self.close()
            raise DataError(f"'{self.path}' is an HDF5 file but not a fewshotkit store; create one with `fewshotkit ingest`")
        if int(version) not in fmt.READABLE_VERSIONS:
            self.close()
            raise DataError(
                f"'{self.path}' has store schema version {int(version)} but this fewshotkit reads versions "
                f"{', '.join(map(str, fmt.READABLE_VERSIONS))}; re-create it with `fewshotkit ingest`"
            )
        self.schema_version = int(version)
        try:
            self._read_metadata(handle)
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            self.close()
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MalformedStoreError(
                f"store '{self.path}' has malformed metadata ({type(exc).__name__}: {detail}); "
                f"`fewshotkit store check {self.path}` lists the problems; re-create it with `fewshotkit ingest`"
            ) from None

    def _read_metadata(self, handle: h5py.File) -> None:
        attrs = handle.attrs
        self.preset: str = str(attrs[fmt.ATTR_PRESET])
        self.modality: str = str(attrs[fmt.ATTR_MODALITY])
        self.classes: dict[int, str] = {int(k): str(v) for k, v in json.loads(attrs[fmt.ATTR_CLASSES]).items()}
        self.class_values: list[int] = sorted(self.classes)
        codes = json.loads(attrs[fmt.ATTR_LABEL_CODES]) if fmt.ATTR_LABEL_CODES in attrs else {}
        #: class value -> the code the user's label files give it (version 1 stores: the value itself)
        self.label_codes: dict[int, int] = {v: int(codes.get(str(v), v)) for v in self.class_values}
        self.preprocessing: dict[str, Any] = json.loads(attrs[fmt.ATTR_PREPROCESSING])
        self.normalization: str = str(attrs[fmt.ATTR_NORMALIZATION])
        self.volumes: list[str] = [str(v) for v in json.loads(attrs[fmt.ATTR_VOLUME_ORDER])]
        self._shapes: dict[str, tuple[int, int, int]] = {}
        self._pixels: dict[str, np.ndarray] = {}
        self._norm: dict[str, tuple[float, float]] = {}
        for vid in self.volumes:
            group = handle[fmt.VOLUMES][vid]
            shape = tuple(int(s) for s in group[fmt.IMAGE].shape)
            if len(shape) != 3:
                raise ValueError(f"volume '{vid}' image has shape {shape}, not (Z, H, W)")
            self._shapes[vid] = shape  # type: ignore[assignment]
            self._pixels[vid] = group[fmt.CLASS_PIXELS][()]
            if self._pixels[vid].shape != (shape[0], len(self.class_values)):
                raise ValueError(f"volume '{vid}' class index has shape {self._pixels[vid].shape}, "
                                 f"expected {(shape[0], len(self.class_values))}")
            self._norm[vid] = (float(group.attrs["norm_mean"]), float(group.attrs["norm_std"]))
        self._col = {v: i for i, v in enumerate(self.class_values)}

    # -- handle management --------------------------------------------------------------------
    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._datasets = {}
        return self._file

    def _dataset(self, group: str, vol: str) -> h5py.Dataset:
        """Cached dataset handles: an h5py path lookup costs more than a slice read."""
        h5 = self._h5()
        key = (group, vol)
        dataset = self._datasets.get(key)
        if dataset is None:
            dataset = self._datasets[key] = h5[fmt.VOLUMES][self._vol(vol)][group]
        return dataset

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._datasets = {}

    def __enter__(self) -> "SliceStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_datasets"] = {}
        return state

    def __repr__(self) -> str:
        return f"SliceStore('{self.path}', preset={self.preset}, {len(self.volumes)} volumes)"

    # -- metadata -----------------------------------------------------------------------------
    def _vol(self, vid: str) -> str:
        if vid not in self._shapes:
            shown = ", ".join(self.volumes[:10]) + (" ..." if len(self.volumes) > 10 else "")
            raise FewshotkitError(f"volume '{vid}' is not in store '{self.path}'; volumes: {shown}")
        return vid

    def class_value(self, name_or_value: str | int) -> int:
        """Class value for a name ("liver"), a value (1) or a value as text ("1")."""
        key = name_or_value
        if isinstance(key, (int, np.integer)) or (isinstance(key, str) and key.strip().isdigit()):
            value = int(key)
            if value in self.classes:
                return value
        else:
            wanted = str(key).strip().lower()
            for value, name in self.classes.items():
                if name.lower() == wanted:
                    return value
        listing = ", ".join(f"{v}={n}" for v, n in self.classes.items())
        raise FewshotkitError(f"unknown class '{name_or_value}' in store '{self.path}'; classes: {listing}")

    def shape(self, vol: str) -> tuple[int, int, int]:
        return self._shapes[self._vol(vol)]

    @property
    def n_slices(self) -> int:
        return sum(s[0] for s in self._shapes.values())

    def volume_attrs(self, vol: str) -> dict[str, Any]:
        """Source paths, spacing, original shape, affine, in-plane ops, preprocessing, patient id."""
        attrs = self._h5()[fmt.VOLUMES][self._vol(vol)].attrs
        out: dict[str, Any] = {}
        for key in fmt.VOLUME_ATTRS:
            if key not in attrs:
                continue
            value = attrs[key]
            if key in ("inplane", "preprocessing"):
                value = json.loads(value)
            elif key == "nifti_header":
                value = bytes(value.tobytes())
            elif isinstance(value, np.ndarray):
                value = value.tolist()
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        return out

    def normalize_with(self, volumes: Sequence[str]) -> tuple[float, float]:
        """For "global" stores (CT): z-score every volume with the statistics of ``volumes``
        (the training fold). Returns (mean, std). Per-volume stores are left as they are."""
        if self.normalization != "global":
            return (float("nan"), float("nan"))
        h5 = self._h5()[fmt.VOLUMES]
        total = total_sq = count = 0.0
        for vid in volumes:
            attrs = h5[self._vol(vid)].attrs
            total += float(attrs["voxel_sum"])
            total_sq += float(attrs["voxel_sumsq"])
            count += float(attrs["voxel_count"])
        if count == 0:
            raise FewshotkitError("normalize_with needs at least one volume")
        mean = total / count
        std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0))) or 1.0
        for vid in self.volumes:
            self._norm[vid] = (mean, std)
        return mean, std

    # -- pixels -------------------------------------------------------------------------------
    def _read(self, group: str, vol: str, z: int | None) -> np.ndarray:
        dataset = self._dataset(group, vol)
        if z is None:
            return dataset[()]
        n = self._shapes[vol][0]
        if not -n <= z < n:
            raise FewshotkitError(f"slice z={z} is out of range for volume '{vol}' ({n} slices)")
        return dataset[z]

    def pseudolabel_input(self, vol: str, z: int | None = None) -> np.ndarray:
        """float32 (H, W) or (Z, H, W): clipped raw MR / CT windowed to 0..255, as stored."""
        return self._read(fmt.IMAGE, vol, z)

    def image(self, vol: str, z: int | None = None) -> np.ndarray:
        """float32 (H, W) or (Z, H, W) model input: (stored - norm_mean) / norm_std."""
        raw = self._read(fmt.IMAGE, vol, z)
        mean, std = self._norm[vol]
        raw -= np.float32(mean)
        raw /= np.float32(std)
        return raw

    def label(self, vol: str, z: int | None = None) -> np.ndarray:
        """uint8 (H, W) or (Z, H, W)."""
        return self._read(fmt.LABEL, vol, z)

    def class_pixels(self, cls: int, vol: str) -> np.ndarray:
        """int64 (Z,): pixels of class ``cls`` per slice of ``vol``."""
        return self._pixels[self._vol(vol)][:, self._col[self.class_value(cls)]]

    def class_slices(self, cls: int, vol: str) -> np.ndarray:
        """Sorted z indices of ``vol`` with at least one pixel of ``cls``."""
        return np.flatnonzero(self.class_pixels(cls, vol) > 0)

    # -- pseudolabels -------------------------------------------------------------------------
    @property
    def pseudolabel_sets(self) -> list[str]:
        return sorted(self._h5()[fmt.PSEUDOLABELS].keys())

    def pseudolabel_set_attrs(self, set_name: str) -> dict[str, Any]:
        attrs = self._h5()[fmt.PSEUDOLABELS][self.resolve_pseudolabel_set(set_name)].attrs
        out = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
        out[fmt.SET_PARAMS] = json.loads(out[fmt.SET_PARAMS])
        return out

    def resolve_pseudolabel_set(self, name: str | None, option: str = "--pseudolabels") -> str:
        """An exact set name, a pseudolabeler name with exactly one set, or None with exactly one set.

        ``option`` is the command-line option that names a set, for the error message.
        """
        from fewshotkit.data.store.sets import describe_set

        sets = self.pseudolabel_sets
        if name is not None and name in sets:
            return name
        group = self._h5()[fmt.PSEUDOLABELS]
        if name is None:
            matches = sets
        else:
            matches = [s for s in sets if group[s].attrs.get(fmt.SET_COMPONENT) == name]
        if len(matches) == 1:
            return matches[0]
        make = f"make one with `fewshotkit pseudolabel {self.path} --with {name or 'felzenszwalb'}`"
        if not sets:
            raise FewshotkitError(f"no pseudolabel set in '{self.path}' (sets: none); {make}")
        listing = "; ".join(describe_set(s, dict(group[s].attrs)) for s in (matches or sets))
        if matches:
            what = (f"store '{self.path}' has {len(sets)} pseudolabel sets" if name is None
                    else f"pseudolabel set '{name}' is ambiguous in '{self.path}'")
            raise FewshotkitError(f"{what}; choose one with {option} NAME: {listing}")
        raise FewshotkitError(f"no pseudolabel set '{name}' in '{self.path}' (sets: {listing}); "
                              f"choose one with {option} NAME or {make}")

    def pseudolabel(self, set_name: str, vol: str, z: int | None = None) -> np.ndarray:
        """int32 (H, W) or (Z, H, W): 0 = unlabelled, segments 1..K."""
        dataset = self._h5()[fmt.PSEUDOLABELS][self.resolve_pseudolabel_set(set_name)][self._vol(vol)]
        return dataset[()] if z is None else dataset[z]

    # -- geometry -----------------------------------------------------------------------------
    def to_nifti(self, vol: str, array_zhw: np.ndarray):
        """A (Z, H, W) label-like array back on the source scan's grid, with its affine and header."""
        attrs = self.volume_attrs(vol)
        return zhw_to_nifti(array_zhw, self.shape(vol), attrs["inplane"], np.asarray(attrs["affine"]),
                            attrs.get("nifti_header"))
