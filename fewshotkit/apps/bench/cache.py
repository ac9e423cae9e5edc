"""What a bench cell's cached result and trained models depend on: the cache keys of ``bench``.

A finished (store, method, fold) cell is reused only when all of these are unchanged:

- the resolved method spec, the training budget, seed, setting, fold, number of folds and
  pseudolabel set (these also name the folder of the trained models, so they are re-used by a
  bench that only changes the evaluation protocol);
- the store's content fingerprint (:func:`fewshotkit.data.store.fingerprint.store_fingerprint`:
  volumes, labels and, for self-supervised training, the pseudolabel set used, named by its labels'
  SHA-256), so re-ingesting other scans or making the set with other labels retrains, while adding
  another set, or making the same set again, does not. Its path is left out: a study's ``cells/``
  copied to another machine with the same scans, ingested and pseudolabelled there into the same
  labels, rebuilds the same tables (numpy's sort can order ties otherwise on another CPU: see
  docs/store-format.md);
- the fingerprint of every plugin providing a component of the spec (its method, parts and
  post-processors): an installed plugin's version, plus a hash of its modules' code (comments and
  docstrings left out) when it is installed in editable mode or has a ``.dev`` version; a loose
  ``--plugins-dir`` file's code hash. Changing a plugin's code therefore retrains and re-evaluates
  what uses it, and nothing else;
- for the cell itself, the protocol (shots, protocol name, chunks and their rule) and the evaluation
  (:func:`evaluation_key`: the split scored, post-processing, slice presence, inference options).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.evaluation.options import InferenceOptions


def digest(data: Any) -> str:
    """16 hex digits of SHA-256 of ``data`` as canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def store_key(path: str | Path, pseudolabel_set: str | None, use_pseudolabels: bool) -> dict[str, Any]:
    """The store's content fingerprint (with the pseudolabel set training uses); not its path."""
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(path) as store:
        used = store.resolve_pseudolabel_set(pseudolabel_set) if use_pseudolabels else None
        return {"data": store_fingerprint(store, used), "pseudolabels": used}


def training_key(spec: Any, store_path: str | Path, *, steps: int, seed: int, setting: int, fold: int,
                 n_folds: int, pseudolabels: str | None, regime: str, exclusion: str = "any",
                 val_scans: int = 0, val_from: str) -> dict[str, Any]:
    """Everything the trained models of a cell depend on (see the module docstring); setting 2's
    ``exclusion`` rule, held-out ``val_scans`` and where they come from (``val_from``) only when
    they are not the defaults they had when added, so the keys of cells without them stay as they were.
    ``val_from`` has no default: the rule that older cells were keyed without (``"end"``) is not the
    one ``train`` and ``bench`` default to, so every caller names it."""
    from fewshotkit.method.provenance import plugin_fingerprints

    key = {"spec": spec.to_dict(), "steps": steps, "seed": seed, "setting": setting, "fold": fold,
           "n_folds": n_folds, "store": store_key(store_path, pseudolabels, regime == "ssl" and steps > 0),
           "plugins": plugin_fingerprints(spec)}
    if setting == 2 and exclusion != "any":
        key["exclusion"] = exclusion
    if val_scans:
        key["val_scans"] = val_scans
        if val_from != "end":
            key["val_from"] = val_from
    return key


def evaluation_key(cfg: BenchConfig, spec: Any) -> tuple[InferenceOptions, dict[str, Any]]:
    """(the options ``spec``'s model is evaluated with, the cell key's evaluation part).

    Post-processing and ``drop_absent`` come from the inference options (``--postprocess``,
    ``--drop-absent``, their ``--eval-set`` aliases), else from the spec (``--set``). The key
    records ``--set``'s and ``--drop-absent``'s slice presence, and ``--eval-set`` as given
    but for its post-processing and chunk rule, which the key records as such, so every spelling of
    one post-processing or rule shares its cells."""
    from fewshotkit.evaluation.options import PROTOCOL_FIELDS
    from fewshotkit.method.provenance import plugin_fingerprints

    options = cfg.inference_options()
    given = options.tables()
    tables = spec.postprocess if given is None else given
    absent = cfg.drop_absent if cfg.drop_absent is not None else spec.drop_absent
    key: dict[str, Any] = {"shots": options.shots, "chunks": options.chunks}
    if options.chunk_rule != "even":  # the default rule stays out of the key: cells keyed without one keep their keys
        key["chunk_rule"] = options.chunk_rule
    if cfg.split != "test":
        key["split"] = cfg.split
    if tables:
        key["postprocess"] = {"tables": tables,
                              "plugins": plugin_fingerprints(dataclasses.replace(spec, postprocess=tables))}
    if absent is not None:
        key["drop_absent"] = absent
    inference = [o for o in cfg.eval_overrides if o.partition("=")[0].strip() not in ("postprocess", *PROTOCOL_FIELDS)]
    if inference:
        key["inference"] = inference
    chosen = options.drop_absent if options.drop_absent is not None else absent
    return options.replace(postprocess=tuple(tables), drop_absent=chosen), key


def variant_suffix(key: dict[str, Any]) -> str:
    """The cell file's suffix for an evaluation variant (post-processing, slice presence, chunk rule, --eval-set)."""
    tables = key.get("postprocess", {}).get("tables", [])
    variant = "_" + "+".join(str(p["type"]) for p in tables) + "-" + digest(key["postprocess"])[:6] if tables else ""
    variant += f"_drop-absent-{key['drop_absent']:g}" if "drop_absent" in key else ""
    variant += f"_chunks-{key['chunk_rule']}" if "chunk_rule" in key else ""
    return variant + (f"_set-{digest(key['inference'])[:6]}" if "inference" in key else "")
