"""The output guard: what a command writes never lands on what it reads, nor on a precious file.

Every command that writes a file or folder calls :func:`check_outputs` before doing any work, with
the paths it writes (each with the option that names it and the kind of file it writes) and the
paths it reads. It refuses, with one line naming the option and the file:

- an output that is one of the command's inputs: the same path after resolving ``..`` and
  symbolic links, or the same file reached through a hard link (``os.path.samefile``), even with
  ``--force``;
- two outputs of one command that are the same file;
- an existing slice store, checkpoint or scan (NIfTI, NRRD, MetaImage, DICOM) where the command
  writes another kind of file
  (``eval -o chaos.h5`` would replace the store with JSON), even with ``--force``;
- an existing file of the kind the command writes, where that kind is precious (a store, a
  checkpoint, a scan or label image) and ``--force`` is not given;
- a folder output that is an existing file.

Other existing outputs (a previous results JSON, a PNG) are replaced, atomically, as before. The
kind of an existing file is read from its first bytes, not its name.
"""

from __future__ import annotations

import gzip
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

from fewshotkit.core.errors import FewshotkitError

PathOrPaths = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None]
STORE, HDF5, CHECKPOINT, SCAN, FOLDER = "store", "HDF5", "checkpoint", "scan", "folder"
_DESCRIBED = {STORE: "a slice store", HDF5: "an HDF5 file", CHECKPOINT: "a checkpoint",
              SCAN: "a scan or label image"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_STORE_FORMAT = "fewshotkit-slice-store"  # the root "format" attribute of a store (fewshotkit.data.store.format)
_NIFTI_MAGICS = (b"n+1\0", b"ni1\0", b"n+2\0", b"ni2\0")


@dataclass(frozen=True)
class Output:
    """One path a command writes: ``option`` names it in messages (``-o``, ``--overlay``), ``kind``
    is what is written there (:data:`STORE`, :data:`SCAN`, :data:`FOLDER`, or e.g. ``"JSON"``)."""

    path: str | os.PathLike
    option: str
    kind: str


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~``, ``..`` and every symbolic link resolved (it need not exist)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same real path, or one inode (hard links)."""
    if real_path(a) == real_path(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def file_kind(path: str | os.PathLike) -> str | None:
    """:data:`STORE` (a slice store), :data:`HDF5` (another HDF5 file), :data:`CHECKPOINT` or
    :data:`SCAN` (NIfTI, NRRD, MetaImage or DICOM) from the first bytes of an existing file, else
    None (also for folders and unreadable files)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(548)
    except OSError:
        return None
    if head.startswith(_HDF5_MAGIC):
        import h5py

        try:
            with h5py.File(path, "r") as h5:
                return STORE if h5.attrs.get("format") == _STORE_FORMAT else HDF5
        except OSError:
            return HDF5
    if head.startswith(b"PK\x03\x04"):  # torch.save's zip format holds <name>/data.pkl
        try:
            with zipfile.ZipFile(path) as archive:
                return CHECKPOINT if any(n.endswith("data.pkl") for n in archive.namelist()) else None
        except (OSError, zipfile.BadZipFile):
            return None
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                head = handle.read(548)
        except (OSError, EOFError):
            return None
    is_nifti = head[344:348] in _NIFTI_MAGICS or head[4:8] in _NIFTI_MAGICS
    is_other_scan = (head.startswith(b"NRRD000") or head[128:132] == b"DICM"  # NRRD, DICOM
                     or head.lstrip().startswith((b"ObjectType", b"NDims")))  # MetaImage header
    return SCAN if is_nifti or is_other_scan else None


def check_outputs(outputs: Iterable[Output | None], inputs: Mapping[str, PathOrPaths] | None = None, *,
                  force: bool = False, force_option: str | None = "--force") -> None:
    """Refuse outputs that would overwrite an input, each other, or a precious file (module docstring).

    ``inputs``: ``{label: path or paths}``, the files and folders the command reads; the label
    (e.g. ``"--store"``) names them in the message; None entries are skipped. ``force`` allows
    replacing an existing precious file of the kind written; ``force_option`` names that flag in
    the message (None: the command has none).
    """
    given = [o for o in outputs if o is not None]
    read: list[tuple[str, Path]] = []
    for label, value in (inputs or {}).items():
        paths = [value] if isinstance(value, (str, os.PathLike)) else list(value or [])
        read += [(label, Path(p)) for p in paths]
    for index, out in enumerate(given):
        where = f"{out.option} '{out.path}'"
        for label, source in read:
            if same_file(out.path, source):
                raise FewshotkitError(f"{where} is the input {label} '{source}' of this command; writing there would replace it: "
                                      "choose another output path")
        for other in given[:index]:
            if same_file(out.path, other.path):
                raise FewshotkitError(f"{where} and {other.option} '{other.path}' are the same file; give each "
                                      "output its own path")
    for out in given:
        _check_existing(out, f"{out.option} '{out.path}'", force, force_option)


def _check_existing(out: Output, where: str, force: bool, force_option: str | None) -> None:
    path = Path(out.path)
    if out.kind == FOLDER:
        if path.exists() and not path.is_dir():
            kind = file_kind(path)
            what = f"{_DESCRIBED[kind]}" if kind else "a file"
            raise FewshotkitError(f"{where} is {what}, not a folder; give a folder path")
        return
    if path.is_dir():
        raise FewshotkitError(f"{where} is a folder; give a file path")
    kind = file_kind(path)
    if kind is None:
        return
    if kind != out.kind:
        raise FewshotkitError(f"{where} is {_DESCRIBED[kind]}; this command writes {_DESCRIBED.get(out.kind, out.kind)} "
                              "there and would destroy it: choose another output path")
    if not force:
        how = f"pass {force_option} to replace it or " if force_option else ""
        raise FewshotkitError(f"{where} already exists ({_DESCRIBED[kind]}); {how}choose another output path")
