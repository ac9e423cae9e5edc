"""A trained method on disk: the checkpoint file format, written atomically and read with its
weights verified, and the method rebuilt from it for inference.

A checkpoint (``torch.save`` of a dict of plain data and tensors, loadable with
``weights_only=True``) holds: ``format``, ``version``, ``step``, ``model`` (state dict),
``optimizer``, ``scheduler``, ``scaler`` (or None), ``rng`` (one entry per DDP rank: python,
numpy, torch CPU/CUDA, sampler numpy Generator, augmentation torch Generator),
``train_seconds``, ``train_cpu_seconds``, ``hooks`` (each training hook's state by the hook's
name: ``ema`` when the run averaged its weights), ``spec_toml`` (the resolved spec),
``plugin_versions``, ``plugin_providers`` (``"kind:name"`` -> plugin), ``run`` (run.json) and
``torch_version``; :func:`save_checkpoint` adds ``model_sha256`` (:func:`state_dict_digest` of
``model``) and ``state_sha256`` (:func:`payload_digest`: every other entry, so the optimiser,
scheduler, scaler, random states, hook states such as the weight average, and step a resumed run
reads are covered too). Version 1 kept the weight average at the top level (``ema``) and had no ``hooks``;
:func:`read_checkpoint` gives such a file in today's layout.

Reading verifies the weights against ``model_sha256`` (or, for older checkpoints, against the
``rank_weight_sha256`` a completed run wrote to run.json), then everything else against
``state_sha256`` where the checkpoint has one (checkpoints written before it load as before), so
a corrupted file is an error naming it instead of a silently wrong model or a resumed run that
continues from damaged optimiser state. A full disk while saving is a one-line error and
leaves the previous checkpoint in place. Resuming a run (random states, the store check) is
:mod:`fewshotkit.training.checkpoint`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from fewshotkit.core.atomic import atomic_path, remove_stale_temporaries
from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.interfaces.method import Method
    from fewshotkit.method.spec import MethodSpec

FORMAT = "fewshotkit-checkpoint"
VERSION = 2
LAST = "last.pt"
DIGEST = "model_sha256"
STATE_DIGEST = "state_sha256"


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of every tensor of a state dict with its name, in order (equal to
    :func:`fewshotkit.training.distributed.parameter_digest` of the module it came from)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def payload_digest(payload: Mapping[str, Any]) -> str:
    """sha256 of a checkpoint's entries except its digests (and the ``path`` added on reading):
    nested dicts by sorted key, lists and tuples alike (a round trip may turn one into the other),
    tensors by dtype, shape and bytes, other values by ``repr``."""
    digest = hashlib.sha256()

    def add(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, Mapping):
            digest.update(f"D{len(value)}".encode())
            for key in sorted(value, key=repr):
                digest.update(repr(key).encode())
                add(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(f"L{len(value)}".encode())
            for item in value:
                add(item)
        else:
            digest.update(f"V{value!r}".encode())

    add({k: v for k, v in payload.items() if k not in (DIGEST, STATE_DIGEST, "path")})
    return digest.hexdigest()


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """``torch.save`` ``payload`` (with its weights' :data:`DIGEST` added) to ``path`` atomically.

    Temporary files a killed run left beside ``path`` are removed first; a full disk raises a
    one-line :class:`~fewshotkit.core.errors.DataError` and keeps the previous ``path``.
    """
    path = Path(path)
    if path.parent.is_dir():
        remove_stale_temporaries(path)
    payload = {**payload, DIGEST: state_dict_digest(payload["model"])}
    payload[STATE_DIGEST] = payload_digest(payload)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return path
#: the checkpoint key of the training hooks' states
HOOKS = "hooks"
#: the weight average's hook name (its state: an ``AveragedModel`` state dict, ``module.*`` + ``n_averaged``)
EMA_KEY = "ema"


def averaged_weights(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The method's state dict inside a checkpoint's ``"ema"`` entry."""
    return {k.removeprefix("module."): v for k, v in state.items() if k.startswith("module.")}


# -- specs inside checkpoints -------------------------------------------------------------------
def spec_to_toml(spec: "MethodSpec") -> str:
    """The resolved spec as TOML text."""
    from fewshotkit.method.spec import dump_spec

    return dump_spec(spec)


def spec_from_toml(text: str, source: Path) -> "MethodSpec":
    from fewshotkit.method.build import parse_spec

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


def checkpoint_inputs(path: str | os.PathLike) -> list[Path]:
    """The files a command reads from a run directory or checkpoint: the checkpoint and, when it is
    a run's, the run's run.json and spec.toml (for :func:`fewshotkit.core.outputs.check_outputs`)."""
    ckpt = resolve_checkpoint(path)
    run = ckpt.parent.parent
    return [ckpt, *(run / name for name in ("run.json", "spec.toml") if ckpt.parent.name == "checkpoints")]


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
    recorded = payload.get(STATE_DIGEST)
    if recorded is not None and payload_digest(payload) != recorded:
        raise FewshotkitError(f"checkpoint '{ckpt_path}' is corrupt: its training state (optimiser, scheduler, random states, "
                              f"hook states such as the weight average, or step) does not match the sha256 recorded inside it; "
                              f"{_earlier_hint(ckpt_path)}")
    payload["path"] = str(ckpt_path)
    return _upgrade(payload)


def _upgrade(payload: dict[str, Any]) -> dict[str, Any]:
    """A version 1 checkpoint in today's layout: its weight average moves under ``hooks``."""
    if HOOKS not in payload:
        average = payload.pop(EMA_KEY, None)
        payload[HOOKS] = {EMA_KEY: average} if average else {}
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
        raise FewshotkitError(f"checkpoint '{ckpt_path}' is corrupt: its weights do not match the sha256 recorded "
                              f"{where}; {_earlier_hint(ckpt_path)}")


def numbered_step(path: Path) -> int | None:
    """The step of a numbered checkpoint ``step_N.pt``; None for any other file name."""
    digits = path.name.removeprefix("step_").removesuffix(".pt")
    return int(digits) if path.name.startswith("step_") and path.suffix == ".pt" and digits.isdigit() else None


def numbered_checkpoints(directory: Path) -> list[Path]:
    """The ``step_N.pt`` files of ``directory``, oldest first (by step: a name's digits grow past six)."""
    found = [(step, path) for path in directory.glob("step_*.pt") if (step := numbered_step(path)) is not None]
    return [path for _, path in sorted(found)]


def _earlier_hint(ckpt_path: Path) -> str:
    """What to do about a corrupt checkpoint: the newest numbered one before it, and how to resume from it."""
    before = numbered_step(ckpt_path)
    earlier = [p for p in numbered_checkpoints(ckpt_path.parent) if p.resolve() != ckpt_path.resolve()
               and (before is None or (numbered_step(p) or 0) < before)]
    if not earlier:
        return "re-train it"
    hint = f"use an earlier checkpoint such as '{earlier[-1]}'"
    if ckpt_path.parent.name != "checkpoints":
        return hint
    return (f"{hint}; to resume the run from it, copy it to '{ckpt_path.parent / LAST}' and run "
            f"`fewshotkit train --resume {ckpt_path.parent.parent}`")


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
    from fewshotkit.host.plugin_host import missing_component_error
    from fewshotkit.method.overrides import apply_inference_overrides
    from fewshotkit.method.build import build_method
    from fewshotkit.interfaces.backbone import without_initial_weights

    payload = read_checkpoint(path)
    ckpt_path = Path(payload["path"])
    record = {**(payload.get("run") or {}), **payload}  # plugin_versions / plugin_providers
    try:
        spec = apply_inference_overrides(spec_from_toml(payload["spec_toml"], ckpt_path), list(overrides))
        with without_initial_weights():  # the checkpoint's weights replace them
            method = build_method(spec)
    except FewshotkitError as exc:
        raise missing_component_error(exc, record, f"checkpoint '{ckpt_path}'") from None
    average = payload[HOOKS].get(EMA_KEY)  # read_checkpoint gives every version this layout
    try:  # a run trained with training.ema: the averaged weights are the ones to predict with
        method.load_state_dict(averaged_weights(average) if average else payload["model"])
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
