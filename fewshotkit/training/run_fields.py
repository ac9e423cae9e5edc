"""What run.json records of a training: its data, settings, devices and software."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from fewshotkit.training.hooks import now
from fewshotkit.training.setup import Run
from fewshotkit.training.trainer import Trainer


#: run.json keys that say how a training ended: a resumed run starts without its previous outcome
OUTCOME_KEYS = ("error", "updated", "finished", "train_seconds", "train_cpu_seconds", "rank_weight_sha256")


def run_fields(run: Run, trainer: Trainer, groups: list[dict[str, Any]]) -> dict[str, Any]:
    """What run.json records: the data, the settings, the devices and the software (status "running")."""
    from fewshotkit.core.device import describe_cpu, describe_device
    from fewshotkit.core.git import git_commit
    from fewshotkit.data.store.axes import scans_orientation
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.host.plugin_host import plugin_versions
    from fewshotkit.interfaces.backbone import weights_sources
    from fewshotkit.method.provenance import plugin_providers

    config, info, dev, store, fold = run.config, run.info, run.device, run.store, run.fold
    return {
        **{key: value for key, value in run.previous.items() if key not in OUTCOME_KEYS},
        "store": str(Path(store.path).resolve()),
        "store_fingerprint": store_fingerprint(store, run.sampler_info.get("pseudolabel_set")),
        "fold": fold.index,
        "n_folds": run.n_folds,
        "setting": run.setting,
        "exclude": [store.classes[c] for c in run.excluded],
        "regime": config.regime,
        "seed": run.seed,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "world_size": info.world_size,
        "process_group": torch.distributed.get_backend() if info.enabled else None,
        "effective_batch_size": config.batch_size * info.world_size,
        "optimizer_groups": groups,
        "device": str(dev),
        "device_name": describe_device() if dev.type == "cuda" else "cpu",
        "cpu": describe_cpu(),  # float32 sums, and so the weights, differ between CPUs
        "threads": torch.get_num_threads(),
        "amp": str(trainer.amp_dtype).removeprefix("torch.") if trainer.use_amp else False,
        "orientation": scans_orientation(store, fold.train),  # what segment brings new scans to
        "modality": store.modality,  # segment warns when a query looks like another
        "fold_queries": list(fold.queries),
        "fold_support": fold.support,
        "fold_train": list(fold.train),
        **({"val_scans": run.val_scans, "val_from": run.val_from, "fold_validation": list(fold.validation),
            "fold_validation_queries": list(fold.validation_queries)} if fold.validation else {}),
        **run.sampler_info,
        "plugin_versions": plugin_versions(),
        "plugin_providers": plugin_providers(run.spec),
        "backbone_weights": weights_sources(trainer.method),  # where pretrained weights came from, with their sha256
        "git_commit": git_commit(),
        "torch_version": str(torch.__version__),
        "status": "running",
        "started": run.previous.get("started", now()),
    }
