"""Carry bench cells and trained models over to fingerprints that name the same code and data anew.

Two fingerprints in every bench cache key changed their form without what they describe changing:

- a plugin's (``settings.plugins``) was a SHA-256 of its files' bytes (``0.1.0+sha256:<hex>``) and
  is now one of their code without comments and docstrings (``0.1.0+code:<hex>``);
- a pseudolabel set's, the ``/<hex>`` part of ``settings.store.data``, named the set by its creation
  time and now by the SHA-256 of its labels, so a set made again with the same labels keeps it.

Cells and model folders made before then miss under the new key. This script rewrites them in place::

    python benchmarks/studies/rekey_cells.py ~/studies/bench/chaos_zoo benchmarks/studies/cells/chaos_zoo \
        --source plugins --store ~/studies/chaos.h5

``--source`` names the plugins (a folder of them as ``plugins/``, a package folder or a module
file; repeated for several) in the state the cells were computed from; only fingerprints whose
byte hash matches one of them are rewritten, to the code hash of the same files. ``--store`` names
a store whose sets record their labels' SHA-256 (made by ``fewshotkit pseudolabel`` now): a cell
trained on the same scans (the same data part of the fingerprint) with a set of the same name gets
that set's fingerprint. A set's name carries its pseudolabeler's parameters, and the pseudolabelers
are deterministic, so the set made again is the one the cell was trained with; check that on one
cell (train it again) before carrying a study over. A folder is a bench output folder (``cells/``
and ``runs/`` inside) or a study's kept cells: name a study's output folder and its kept cells in
one call, so its model folders are found from either.

For each cell: its ``settings`` get the new fingerprints, its ``key`` their digest, its file name
the new digests (of its post-processing, and a ``_key-<digest>`` where it had one, or where the
new name holds a cell of other settings); each model folder ``runs/STORE/LABEL/foldN-<digest>``
of a cell gets the new digest of the cell's training settings. Model folders without a cell (a
training under way) keep their names: rekey a study once its trainings are done. A cell whose key
does not match its settings, or that names a plugin hash not among the sources, is left as it is
and listed. Running it again changes nothing more. Stop every bench writing to a folder before
rekeying it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.cache import digest, variant_suffix
from fewshotkit.apps.bench.cell_file import holds_other_key
from fewshotkit.evaluation.results import write_json
from fewshotkit.host.provenance import source_hash

#: the cell key's fields that are not the trained models' (the rest is ``training_key``'s)
EVALUATION_FIELDS = ("protocol", "shots", "chunks", "chunk_rule", "split", "postprocess", "drop_absent", "inference")
KEYED = re.compile(r"_key-[0-9a-f]{8}$")


def byte_hash(path: Path) -> str:
    """The fingerprints' former hash: that of the files' bytes, where today's hashes their code."""
    return source_hash(path, content=lambda raw: raw)


def hash_map(sources: list[Path]) -> dict[str, str]:
    """Byte hash -> code hash of each plugin in ``sources``: package folders, module files, and
    folders of those (as ``plugins/``)."""
    plugins: list[Path] = []
    for source in sources:
        if source.is_file() or (source / "__init__.py").is_file():
            plugins.append(source)
        else:
            plugins += [p for p in sorted(source.iterdir())
                        if (p.is_dir() and (p / "__init__.py").is_file()) or (p.is_file() and p.suffix == ".py")]
    return {byte_hash(p): source_hash(p) for p in plugins}


def store_map(stores: list[Path]) -> dict[tuple[str, str], str]:
    """(data part, set name) -> the store's fingerprint with that set, for each set of ``stores`` that
    records its labels' SHA-256."""
    from fewshotkit.data.store import format as fmt
    from fewshotkit.data.store.fingerprint import data_part, store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    out: dict[tuple[str, str], str] = {}
    for path in stores:
        with SliceStore(path) as store:
            sets = store._h5()[fmt.PSEUDOLABELS]
            for name in store.pseudolabel_sets:
                if fmt.SET_LABELS_SHA256 in sets[name].attrs:
                    fingerprint = store_fingerprint(store, name)
                    out[(data_part(fingerprint), name)] = fingerprint
    return out


def rekeyed(fingerprints: dict[str, str | None], hashes: dict[str, str]) -> tuple[dict[str, str | None], list[str]]:
    """(``fingerprints`` with every known ``sha256:<byte hash>`` as ``code:<code hash>``, the unknown ones)."""
    out: dict[str, str | None] = {}
    unknown = []
    for name, value in fingerprints.items():
        head, found, old = (value or "").rpartition("sha256:")
        if found and old in hashes:
            value = f"{head}code:{hashes[old]}"
        elif found:
            unknown.append(f"{name} {value}")
        out[name] = value
    return out, unknown


def new_settings(settings: dict[str, Any], hashes: dict[str, str],
                 stores: dict[tuple[str, str], str]) -> tuple[dict[str, Any], list[str]]:
    """A cell's settings with rekeyed plugin fingerprints (its own and its post-processors') and store
    fingerprint (see :func:`store_map`), and the plugin fingerprints no source matches."""
    from fewshotkit.data.store.fingerprint import data_part

    settings = json.loads(json.dumps(settings))
    store = settings.get("store")
    if isinstance(store, dict) and isinstance(store.get("data"), str) and store.get("pseudolabels"):
        store["data"] = stores.get((data_part(store["data"]), str(store["pseudolabels"])), store["data"])
    settings["plugins"], unknown = rekeyed(settings.get("plugins") or {}, hashes)
    post = settings.get("postprocess")
    if isinstance(post, dict) and isinstance(post.get("plugins"), dict):
        post["plugins"], more = rekeyed(post["plugins"], hashes)
        unknown += more
    return settings, unknown


def training_digest(settings: dict[str, Any]) -> str:
    """The digest naming a cell's model folder (``foldN-<digest>``)."""
    return digest({k: v for k, v in settings.items() if k not in EVALUATION_FIELDS})


def cell_files(folder: Path) -> Iterator[Path]:
    """The cell files of a bench output folder (under ``cells/``) or of a kept-cells folder."""
    cells = folder / "cells" if (folder / "cells").is_dir() else folder
    yield from sorted(cells.rglob("*.json"))


def renamed(name: str, settings: dict[str, Any], settings_new: dict[str, Any], key: str | None) -> str:
    """A cell's file name under new settings: its evaluation variant (which names a digest of the
    post-processors and their plugins' fingerprints) anew, with ``_key-<key>`` when ``key`` is given."""
    stem = KEYED.sub("", name.removesuffix(".json"))
    old, new = variant_suffix(settings), variant_suffix(settings_new)
    if old and stem.endswith(old):
        stem = stem.removesuffix(old) + new
    return stem + (f"_key-{key[:8]}" if key else "") + ".json"


@dataclass
class Rewrite:
    """One cell to write anew: its file, its new content and the model folders' digests (old, new)."""

    path: Path
    cell: dict[str, Any]
    settings: dict[str, Any]  # as the cell had them
    models: tuple[str, str]


def plan_cell(path: Path, hashes: dict[str, str], stores: dict[tuple[str, str], str]) -> Rewrite | str:
    """The rewrite of one cell file, or why there is none ("unchanged", "skipped (...)")."""
    try:
        cell = json.loads(path.read_text(encoding="utf-8"))
        settings = cell["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return "skipped (not a bench cell)"
    if cell.get("key") != digest(settings):
        return "skipped (its key does not match its settings)"
    settings_new, unknown = new_settings(settings, hashes, stores)
    if unknown:
        return f"skipped (no source has the code of {', '.join(unknown)})"
    if settings_new == settings:
        return "unchanged"
    return Rewrite(path, {**cell, "settings": settings_new, "key": digest(settings_new)}, settings,
                   (training_digest(settings), training_digest(settings_new)))


def write(rewrite: Rewrite) -> str:
    """Write a cell anew under its new name; where that file holds a cell of other settings, under
    the name with the key's digest (as bench keeps both). What happened."""
    key = rewrite.cell["key"]
    target = rewrite.path.with_name(renamed(rewrite.path.name, rewrite.settings, rewrite.cell["settings"],
                                            key if KEYED.search(rewrite.path.stem) else None))
    if target != rewrite.path and holds_other_key(target, key):
        target = rewrite.path.with_name(renamed(rewrite.path.name, rewrite.settings, rewrite.cell["settings"], key))
        if target != rewrite.path and holds_other_key(target, key):
            return f"skipped ({target.name} holds another cell)"
    write_json(target, rewrite.cell)
    if target != rewrite.path:
        rewrite.path.unlink()
    return "rekeyed"


def rename_models(folders: list[Path], renames: dict[str, str], say: Callable[[str], None]) -> int:
    """Rename every ``runs/STORE/LABEL/foldN-<old>`` to ``-<new>``; the number renamed."""
    done = 0
    for run in sorted(r for folder in folders for r in folder.glob("runs/*/*/fold*-*")):
        fold, _, old = run.name.rpartition("-")
        if old not in renames:
            continue
        target = run.with_name(f"{fold}-{renames[old]}")
        if target.exists():
            say(f"{run}: left as it is ({target.name} exists)")
            continue
        run.rename(target)
        done += 1
    return done


def rekey(folders: list[Path], hashes: dict[str, str], say: Callable[[str], None] = print,
          stores: dict[tuple[str, str], str] | None = None) -> dict[str, int]:
    """Rekey every cell in ``folders`` and the model folders of those cells; counts of what happened.

    The model folders are renamed before any cell is written: a rekey stopped part way and run
    again still finds every model folder's old digest in a cell not yet written."""
    counts: dict[str, int] = {}
    planned: list[Rewrite] = []

    def count(path: Path, what: str) -> None:
        counts[what.partition(" (")[0]] = counts.get(what.partition(" (")[0], 0) + 1
        if what.startswith("skipped"):
            say(f"{path}: {what}")

    for path in (p for folder in folders for p in cell_files(folder)):
        outcome = plan_cell(path, hashes, stores or {})
        if isinstance(outcome, Rewrite):
            planned.append(outcome)
        else:
            count(path, outcome)
    counts["model folders renamed"] = rename_models(folders, dict(r.models for r in planned), say)
    for rewrite in planned:
        count(rewrite.path, write(rewrite))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="bench output folders or kept-cell folders")
    parser.add_argument("--source", type=Path, action="append", default=[],
                        help="the plugins the cells were computed with: a folder of them (e.g. plugins), a "
                             "package folder or a module file; repeat for several")
    parser.add_argument("--store", type=Path, action="append", default=[],
                        help="a store whose pseudolabel sets record their labels' SHA-256; repeat for several")
    args = parser.parse_args(argv)
    if not args.source and not args.store:
        print("rekey_cells: give --source (the plugins the cells were computed with), --store (a store "
              "pseudolabelled anew) or both", file=sys.stderr)
        return 2
    for store in args.store:
        if not store.is_file():
            print(f"rekey_cells: --store {store} is not a file: give the store the cells' scans are in", file=sys.stderr)
            return 2
    for source in args.source:
        if not source.exists():
            print(f"rekey_cells: --source {source} does not exist: give the plugins folder the cells were "
                  "computed with", file=sys.stderr)
            return 2
    for folder in args.folders:
        if not folder.is_dir():
            print(f"rekey_cells: {folder} is not a folder: give bench output folders or kept-cell folders",
                  file=sys.stderr)
            return 2
    counts = rekey(args.folders, hash_map(args.source), stores=store_map(args.store))
    print(", ".join(f"{n} {what}" for what, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
