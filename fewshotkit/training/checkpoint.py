"""Checkpoints: written atomically, carrying everything needed to resume exactly or to evaluate.

A checkpoint (``torch.save`` of a dict of plain data and tensors, loadable with
``weights_only=True``) holds: ``format``, ``version``, ``step``, ``model`` (state dict),
``optimizer``, ``scheduler``, ``scaler`` (or None), ``rng`` (one entry per DDP rank: python,
numpy, torch CPU/CUDA, sampler numpy Generator, augmentation torch Generator), ``spec_toml``
(the resolved spec), ``plugin_versions``, ``plugin_providers`` (``"kind:name"`` -> plugin),
``run`` (run.json) and ``torch_version``;
:func:`save_checkpoint` adds ``model_sha256`` (:func:`state_dict_digest` of ``model``).

Reading verifies the weights against ``model_sha256`` (or, for older checkpoints, against the
``rank_weight_sha256`` a completed run wrote to run.json), so a corrupted file is an error
naming it instead of a silently wrong model. A full disk while saving is a one-line error and
leaves the previous checkpoint in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from fewshotkit.atomic import atomic_path, remove_stale_temporaries
from fewshotkit.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.interfaces.method import Method
    from fewshotkit.spec import MethodSpec
    from fewshotkit.store.reader import SliceStore

FORMAT = "fewshotkit-checkpoint"
VERSION = 1
LAST = "last.pt"
DIGEST = "model_sha256"


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor of a state dict with its name, in order (equal to
    :func:`fewshotkit.training.distributed.parameter_digest` of the module it came from)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` ``payload`` (with its weights' :data:`DIGEST` added) to ``path`` atomically.

    Temporary files a killed run left beside ``path`` are removed first; a full disk raises a
    one-line :class:`~fewshotkit.errors.DataError` and keeps the previous ``path``.
    """
    path = Path(path)
    if path.parent.is_dir():
        remove_stale_temporaries(path)
    payload = {**payload, DIGEST: state_dict_digest(payload["model"])}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return path


# -- random states ------------------------------------------------------------------------------
def capture_rng(sampler_rng: np.random.Generator, aug_generator: torch.Generator) -> dict[str, Any]:
    """Every random state of this process (plain data + tensors, safe for weights_only loading)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "sampler": sampler_rng.bit_generator.state,
        "augment": aug_generator.get_state(),
    }


def restore_rng(state: dict[str, Any], sampler_rng: np.random.Generator, aug_generator: torch.Generator) -> bool:
    """Inverse of :func:`capture_rng`; False when the augmentation state is another device type's
    (a run trained on the CPU resumed on a GPU, or back), which ``aug_generator`` cannot take."""
    random.setstate(_tuplify(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    sampler_rng.bit_generator.state = state["sampler"]
    # a CPU generator's state (Mersenne Twister) and a CUDA one's (Philox) differ in size
    if state["augment"].numel() != aug_generator.get_state().numel():
        return False
    aug_generator.set_state(state["augment"])
    return True


def _tuplify(value: Any) -> Any:
    """random.setstate wants nested tuples; a round trip may give lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value


# -- specs inside checkpoints -------------------------------------------------------------------
def spec_to_toml(spec: "MethodSpec") -> str:
    """The resolved spec as TOML text."""
    from fewshotkit.spec import dump_spec

    return dump_spec(spec)


def spec_from_toml(text: str, source: Path) -> "MethodSpec":
    from fewshotkit.spec import parse_spec

    return parse_spec(text, source=f"checkpoint '{source}': its stored spec")


# -- reading ------------------------------------------------------------------------------------
def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run directory -> its ``checkpoints/last.pt``; a file -> itself (must exist)."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / LAST
        if not candidate.is_file():
            raise FewshotkitError(
                f"run directory '{path}' has no checkpoint ({candidate} is missing); "
                "train it with `fewshotkit train ... --out RUN_DIR`"
            )
        return candidate
    if not path.is_file():
        raise FewshotkitError(f"checkpoint '{path}' does not exist; give a run directory or a .pt file from `fewshotkit train`")
    return path


def read_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint file (or a run directory's last one)."""
    ckpt_path = resolve_checkpoint(path)
    try:
        payload = torch.load(ckpt_path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors have many types
        raise FewshotkitError(
            f"'{ckpt_path}' is not a readable fewshotkit checkpoint ({type(exc).__name__}); "
            "give a checkpoint written by `fewshotkit train`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FewshotkitError(f"'{ckpt_path}' is not a fewshotkit checkpoint; give one written by `fewshotkit train`")
    if int(payload.get("version", -1)) > VERSION:
        raise FewshotkitError(
            f"checkpoint '{ckpt_path}' has format version {payload['version']}, newer than this fewshotkit "
            f"reads ({VERSION}); upgrade fewshotkit"
        )
    _verify_weights(payload, ckpt_path)
    payload["path"] = str(ckpt_path)
    return payload


def _verify_weights(payload: dict[str, Any], ckpt_path: Path) -> None:
    """Compare the weights with their recorded sha256; a mismatch names the file and an earlier one."""
    recorded, where = payload.get(DIGEST), "inside it"
    if recorded is None:  # written before checkpoints carried a digest: a completed run's run.json
        run_json = ckpt_path.parent.parent / "run.json"
        try:
            run = json.loads(run_json.read_text(encoding="utf-8")) if ckpt_path.name == LAST else {}
        except (OSError, ValueError):
            run = {}
        digests = run.get("rank_weight_sha256") or []
        if run.get("status") == "completed" and run.get("final_step") == payload.get("step") and digests:
            recorded, where = digests[0], f"in {run_json}"
    if recorded is None or not isinstance(payload.get("model"), dict):
        return
    if state_dict_digest(payload["model"]) != recorded:
        earlier = sorted(p for p in ckpt_path.parent.glob("step_*.pt") if p.resolve() != ckpt_path.resolve())
        hint = f"use an earlier checkpoint such as '{earlier[-1]}'" if earlier else "re-train it"
        raise FewshotkitError(f"checkpoint '{ckpt_path}' is corrupt: its weights do not match the sha256 recorded "
                              f"{where}; {hint}")


def check_resume_store(previous_run: dict[str, Any], store: "SliceStore") -> None:
    """Refuse to continue a run on other data than it was trained on.

    ``previous_run`` is the run's run.json; its ``store_fingerprint`` (recorded at the start of
    training, see :func:`fewshotkit.store.fingerprint.store_fingerprint`) must equal the store's
    now, with the run's pseudolabel set. Runs recorded without a fingerprint are not checked.
    """
    from fewshotkit.store.fingerprint import store_fingerprint

    recorded = previous_run.get("store_fingerprint")
    if not recorded:
        return
    if store_fingerprint(store, previous_run.get("pseudolabel_set")) != recorded:
        raise FewshotkitError(
            f"--resume: store '{store.path}' no longer holds the data this run was trained on (its volumes, "
            "labels or pseudolabel set changed since the run started); resume only on the original store, "
            "or start a new run with --out"
        )


@dataclass
class LoadedMethod:
    """A trained method ready for inference and what is known about how it was trained."""

    method: "Method"  # in eval mode, on the device
    spec: "MethodSpec"
    meta: dict  # step, plugin_versions, run (run.json contents), path, torch_version


def load_method(path: str | os.PathLike, device: "torch.device | str" = "cpu",
                overrides: Sequence[str] = ()) -> LoadedMethod:
    """Rebuild the method of a checkpoint (or a run directory's ``checkpoints/last.pt``).

    ``overrides`` (``--set KEY=VALUE``) change inference options of the trained method before it is
    built, e.g. ``pooler.test_window=1`` or ``image_size=160``; one that changes the weights'
    shapes, or a ``training.*`` key, is refused. Missing file, not a checkpoint, or a method/part no
    loaded plugin provides raise a :class:`FewshotkitError` naming the file and what to do.
    """
    from fewshotkit.plugin_host import missing_component_error
    from fewshotkit.overrides import apply_inference_overrides
    from fewshotkit.spec import build_method

    payload = read_checkpoint(path)
    ckpt_path = Path(payload["path"])
    record = {**(payload.get("run") or {}), **payload}  # plugin_versions / plugin_providers
    try:
        spec = apply_inference_overrides(spec_from_toml(payload["spec_toml"], ckpt_path), list(overrides))
        method = build_method(spec)
    except FewshotkitError as exc:
        raise missing_component_error(exc, record, f"checkpoint '{ckpt_path}'") from None
    from fewshotkit.training.ema import EMA_KEY, averaged_weights

    try:  # a run trained with training.ema: the averaged weights are the ones to predict with
        method.load_state_dict(averaged_weights(payload[EMA_KEY]) if payload.get(EMA_KEY) else payload["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        if overrides:
            raise FewshotkitError(
                f"checkpoint '{ckpt_path}': with --set {' '.join(overrides)} the weights no longer fit the "
                f"method ({first}); only options that keep the weights' shapes can change after training"
            ) from None
        raise FewshotkitError(
            f"checkpoint '{ckpt_path}': weights do not fit the method its spec builds ({first}); "
            "the plugin versions may differ from those it was trained with "
            f"({payload.get('plugin_versions')})"
        ) from None
    method.to(device).eval()
    meta = {
        "step": int(payload["step"]),
        "plugin_versions": payload.get("plugin_versions", {}),
        "run": payload.get("run", {}),
        "path": str(ckpt_path),
        "torch_version": payload.get("torch_version"),
    }
    return LoadedMethod(method=method, spec=spec, meta=meta)


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest ``step_NNNNNN.pt`` files (``last.pt`` is never removed)."""
    numbered = sorted(directory.glob("step_*.pt"))
    for old in numbered[:-keep] if keep > 0 else numbered:
        old.unlink(missing_ok=True)
