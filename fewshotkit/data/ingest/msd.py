"""The ``msd`` preset: a dataset in the Medical Segmentation Decathlon / nnU-Net raw layout.

::

    DIR/dataset.json        "labels": {"0": "background", "1": "liver"}      (MSD)
                                   or {"background": 0, "liver": 1}          (nnU-Net v2)
                            "modality": {"0": "MRI"} (MSD) or "channel_names": {"0": "T2"} (v2)
                            "file_ending": ".nii.gz" (v2, optional)
    DIR/imagesTr/CASE_0000.nii.gz  (nnU-Net: channel suffix) or CASE.nii.gz (MSD: 3D, or 4D with one channel)
    DIR/labelsTr/CASE.nii.gz

Class names and values come from ``dataset.json``, so no label map is written by hand. Only
single-channel datasets are ingested. Each pair is read and preprocessed like the ``nifti``
preset (top clip unless already clipped, optional in-plane crop/pad or resize, per-volume z-score).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from fewshotkit.core.errors import DataError
from fewshotkit.data.ingest.common import ScanPrep, require_dir, scan_order, write_store
from fewshotkit.data.ingest.nifti import nifti_pair_record
from fewshotkit.data.store.writer import StoreHeader, VolumeRecord

CHANNEL = "_0000"


@dataclass
class MsdDataset:
    """What ``dataset.json`` says: class value -> name, modality (MR/CT), file ending, layout name."""

    name: str
    classes: dict[int, str]
    modality: str
    file_ending: str
    layout: str


def parse_labels(labels: Any, source: Path) -> tuple[dict[int, str], str]:
    """(class value -> name without background, layout) from either ``labels`` form."""
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"'{source}' has no 'labels' table; add e.g. \"labels\": {{\"0\": \"background\", \"1\": \"liver\"}}")
    if all(str(k).strip().isdigit() for k in labels) and all(isinstance(v, str) for v in labels.values()):
        pairs, layout = [(int(k), str(v)) for k, v in labels.items()], "MSD"
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in labels.values()):
        pairs, layout = [(int(v), str(k)) for k, v in labels.items()], "nnU-Net v2"
    else:
        bad = next(v for v in labels.values() if not isinstance(v, (int, str)))
        what = "region-based labels (a list of values)" if isinstance(bad, list) else f"value {bad!r}"
        raise DataError(f"'{source}': 'labels' holds {what}; give one integer value per class "
                        "({\"0\": \"background\", \"1\": \"liver\"} or {\"background\": 0, \"liver\": 1})")
    classes: dict[int, str] = {}
    for value, name in sorted(pairs):
        if value == 0:
            continue
        if not 0 < value < 256 or not name.strip():
            raise DataError(f"'{source}': label {value}={name!r} needs a value in 1..255 and a name")
        same = [v for v, n in classes.items() if n.lower() == name.strip().lower()]
        if same:
            raise DataError(f"'{source}': the name {name!r} is given to labels {same[0]} and {value}; "
                            "give each class its own name")
        classes[value] = name.strip()
    if not classes:
        raise DataError(f"'{source}': 'labels' has no class besides the background (0)")
    return classes, layout


def read_dataset_json(folder: Path) -> MsdDataset:
    """Read and check ``folder/dataset.json`` (one-line DataErrors naming the file)."""
    path = folder / "dataset.json"
    if not path.is_file():
        raise DataError(f"'{folder}' has no dataset.json; an MSD / nnU-Net raw dataset folder holds dataset.json, "
                        "imagesTr/ and labelsTr/")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"'{path}' is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"'{path}' must hold a JSON object with 'labels'")
    classes, layout = parse_labels(data.get("labels"), path)
    channels = data.get("channel_names", data.get("modality", {"0": "MR"}))
    if not isinstance(channels, dict) or not channels:
        raise DataError(f"'{path}': 'channel_names' / 'modality' must map channel numbers to names")
    if len(channels) > 1:
        listing = ", ".join(f"{k}={v}" for k, v in channels.items())
        raise DataError(f"'{path}' lists {len(channels)} channels ({listing}); fewshotkit ingests single-channel "
                        "scans: make a dataset folder with one channel")
    modality = "CT" if "CT" in str(next(iter(channels.values()))).upper() else "MR"
    file_ending = str(data.get("file_ending", ".nii.gz"))
    return MsdDataset(str(data.get("name", folder.name)), classes, modality, file_ending, layout)


def _case_files(directory: Path, file_ending: str) -> dict[str, Path]:
    """Case id -> file for the visible ``*file_ending`` files of ``directory`` (macOS ``._`` files skipped)."""
    if not directory.is_dir():
        raise DataError(f"'{directory}' does not exist; an MSD / nnU-Net raw dataset keeps its scans there")
    return {p.name[: -len(file_ending)]: p for p in directory.glob(f"*{file_ending}") if not p.name.startswith(".")}


def find_cases(folder: Path, file_ending: str) -> list[tuple[str, Path, Path]]:
    """[(case, image, label)] sorted by case id; an unpaired or multi-channel file is a DataError.

    ``CASE_XXXX`` images are channel XXXX of ``CASE`` when ``CASE`` has a label (nnU-Net), else
    the image of case ``CASE_XXXX`` (MSD names carry no channel suffix).
    """
    images, labels = _case_files(folder / "imagesTr", file_ending), _case_files(folder / "labelsTr", file_ending)
    if not labels:
        raise DataError(f"'{folder / 'labelsTr'}' holds no '*{file_ending}' label files")
    by_case: dict[str, Path] = {}
    for key, path in sorted(images.items()):
        case, channel = key[:-5], key[-4:]
        if key[-5:-4] == "_" and channel.isdigit() and case in labels and key not in labels:
            if channel != CHANNEL[1:]:
                raise DataError(f"'{path}' is channel {int(channel)} of case '{case}'; fewshotkit ingests "
                                "single-channel scans (only _0000 images)")
            key = case
        if key in by_case:
            raise DataError(f"case '{key}' has two images, '{by_case[key]}' and '{path}'; keep one")
        by_case[key] = path
    unlabelled = sorted(set(by_case) - set(labels), key=scan_order)
    if unlabelled:
        case = unlabelled[0]
        raise DataError(f"image '{by_case[case]}' has no label '{folder / 'labelsTr' / (case + file_ending)}' "
                        f"({len(unlabelled)} unlabelled image(s))")
    missing = sorted(set(labels) - set(by_case), key=scan_order)
    if missing:
        case = missing[0]
        raise DataError(f"label '{labels[case]}' has no image '{folder / 'imagesTr' / (case + CHANNEL + file_ending)}' "
                        f"({len(missing)} label(s) without an image)")
    return [(case, by_case[case], labels[case]) for case in sorted(labels, key=scan_order)]


def _check_single_channel(path: Path) -> None:
    """A 4D image with more than one volume is several channels (MSD packs them that way)."""
    import nibabel as nib

    try:
        image: Any = nib.load(str(path))  # a spatial image (FileBasedImage declares no shape)
        shape = image.shape
    except Exception as exc:  # nibabel raises several types for unreadable files
        raise DataError(f"'{path}' cannot be read as NIfTI ({type(exc).__name__}: {exc})") from None
    if len(shape) == 4 and shape[3] > 1:
        raise DataError(f"'{path}' holds {shape[3]} channels (a 4D image); fewshotkit ingests single-channel scans: "
                        "split out the channel you want")


def ingest_msd(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    target_size: int | None = None,
    resize: bool = False,
    clip_mode: str = "auto",
    clip_percentile: float | None = 99.5,
    limit: int | None = None,
    quiet: bool = False,
    overwrite: bool = False,
) -> Path:
    """An MSD / nnU-Net raw dataset folder (training cases) -> a store; see the module docstring."""
    folder = require_dir(src)
    info = read_dataset_json(folder)
    cases = find_cases(folder, info.file_ending)[:limit]
    for _, image_path, _ in cases:
        _check_single_channel(image_path)
    codes = {float(v): v for v in info.classes}
    prep = ScanPrep(clip_percentile, clip_mode, target_size, "resize" if resize else "crop_pad")

    def records() -> Iterator[VolumeRecord]:
        for case, image_path, label_path in cases:
            yield nifti_pair_record(case, image_path, label_path, codes, prep,
                                    "; dataset.json 'labels' must list every value")

    params = {"dataset": info.name, "layout": info.layout, **prep.params()}
    return write_store(out, records(), StoreHeader("msd", info.modality, info.classes, params), total=len(cases),
                       quiet=quiet, overwrite=overwrite)
