"""What a bench cell's cached result and trained models depend on: the cache keys of ``bench``.

A finished (store, method, fold) cell is reused only when all of these are unchanged:

- the resolved method spec, the training budget, seed, setting, fold, number of folds and
  pseudolabel set (these also name the folder of the trained models, so they are re-used by a
  bench that only changes the evaluation protocol);
- the store's fingerprint: its resolved path, size and modification time (re-ingesting or
  adding pseudolabels makes a new one);
- the fingerprint of every plugin providing a component of the spec (its method, parts and
  post-processors): an installed plugin's version, plus a hash of its module files when it is
  installed in editable mode or has a ``.dev`` version; a loose ``--plugins-dir`` file's hash.
  Editing a plugin therefore retrains and re-evaluates what uses it, and nothing else;
- for the cell itself, the protocol (shots, protocol name, chunks).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def digest(data: Any) -> str:
    """16 hex digits of SHA-256 of ``data`` as canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def store_fingerprint(path: str | Path) -> dict[str, Any]:
    """The store's resolved path, size and modification time (cheap: the file is not read)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def training_key(spec: Any, store_path: str | Path, *, steps: int, seed: int, setting: int, fold: int,
                 n_folds: int, pseudolabels: str | None) -> dict[str, Any]:
    """Everything the trained models of a cell depend on (see the module docstring)."""
    from fewshotkit.spec import plugin_fingerprints

    return {"spec": spec.to_dict(), "steps": steps, "seed": seed, "setting": setting, "fold": fold,
            "n_folds": n_folds, "store": store_fingerprint(store_path), "pseudolabels": pseudolabels,
            "plugins": plugin_fingerprints(spec)}
