"""Built-in method presets: plain spec tables (``fewshotkit compose --list-presets``).

The paper's methods use the reference's ResNet-101 body at 256 px; the ``-cpu`` forms use the CPU
recipe (a light encoder trained from scratch at 128 px) and the same training table, so they are
compared at one budget. Pure data: this module imports nothing from fewshotkit.
"""

from __future__ import annotations

import copy
from typing import Any

_ALP = {"type": "alp", "train_window": 4, "test_window": 2, "threshold": 0.95}
_PAPER_BACKBONE = {"type": "deeplab-resnet101", "out_channels": 256}
_COMPOSED_OPTIONS = {"bg_weight": 0.05, "align_weight": 1.0}
PAPER_STEPS = 100_000
_CPU_BACKBONE = {"type": "light", "out_channels": 256, "in_channels": 1, "width": 32, "output_stride": 4,
                 "norm": "group"}


def _composed(method: str, pooler: dict, classifier: str, regime: str, steps: int, backbone: dict = _PAPER_BACKBONE,
              image_size: int = 256) -> dict[str, Any]:
    return {
        "method": method,
        "image_size": image_size,
        "options": dict(_COMPOSED_OPTIONS),
        "backbone": dict(backbone),
        "pooler": dict(pooler),
        "classifier": {"type": classifier, "scale": 20.0},
        "training": {"regime": regime, "steps": steps},
    }


PRESETS: dict[str, dict[str, Any]] = {
    # the paper's methods (ResNet-101 body; COCO weights need backbone.weights=PATH offline)
    "ssl-alpnet": _composed("alpnet", _ALP, "cosine-softmax", "ssl", PAPER_STEPS),
    "ssl-panet": _composed("panet", {"type": "masked-avg"}, "cosine", "ssl", PAPER_STEPS),
    "alpnet": _composed("alpnet", _ALP, "cosine-softmax", "supervised", PAPER_STEPS),
    "panet": _composed("panet", {"type": "masked-avg"}, "cosine", "supervised", PAPER_STEPS),
    "senet": {
        "method": "senet",
        "image_size": 256,
        "options": {},
        "training": {"regime": "supervised", "steps": PAPER_STEPS},
    },
    # ALPNet with an untrained backbone (the paper's ALPNet-init used COCO weights: pass them)
    "alpnet-init": _composed("alpnet", _ALP, "cosine-softmax", "ssl", 0),
    # CPU recipe: the light encoder at 128 x 128, stride 4 -> a 32 x 32 feature grid like the
    # paper's, so ALP's 4 / 2 windows cover the same image fraction; trained from scratch with AdamW
    # (lr 1e-3, 100 warm-up steps, cosine to 0) for 2000 steps of 4 episodes; on CHAOS-T2 it scores
    # above the previous SGD recipe at equal steps (docs/results.md, "What does the CPU recipe reach").
    "ssl-alpnet-cpu": {
        **_composed("alpnet", _ALP, "cosine-softmax", "ssl", 2_000, backbone=_CPU_BACKBONE, image_size=128),
        "training": {"regime": "ssl", "steps": 2_000, "batch_size": 4, "optimizer": "adamw", "lr": 1e-3,
                     "weight_decay": 1e-4, "schedule": "cosine", "warmup_steps": 100, "checkpoint_every": 250},
    },
    # the previous CPU recipe, kept for comparison: SGD lr 3e-3 (the best of 1e-3, 3e-3 and 1e-2
    # after 500 steps; 1e-2 collapsed), x0.8 every 500 steps, 5000 steps
    "ssl-alpnet-cpu-sgd": {
        **_composed("alpnet", _ALP, "cosine-softmax", "ssl", 5_000, backbone=_CPU_BACKBONE, image_size=128),
        "training": {"regime": "ssl", "steps": 5_000, "batch_size": 4, "lr": 3e-3, "lr_step": 500,
                     "lr_gamma": 0.8, "checkpoint_every": 250},
    },
    # threshold methods (docs/methods.md): their papers' loss weights (bg 0.1) and schedules (SGD
    # lr 1e-3, x0.95 every 1000 steps; ADNet's script trains 50k steps, RPT's 40k x0.98 every 5000)
    "ssl-adnet": {
        **_composed("adnet", {"type": "masked-avg"}, "threshold", "ssl", 50_000),
        "options": {"bg_weight": 0.1, "align_weight": 1.0},
        "classifier": {"type": "threshold", "scale": 20.0, "init_threshold": -10.0, "threshold_weight": 1.0},
    },
    # Q-Net's single-scale form on the composed method (the ssl-qnet presets before the published form)
    "ssl-qnet-single": {
        **_composed("qnet", {"type": "masked-avg"}, "query-threshold", "ssl", 50_000),
        "options": {"bg_weight": 0.1, "align_weight": 1.0},
        "classifier": {"type": "query-threshold", "scale": 20.0, "init_threshold": -10.0, "refine_steps": 0},
    },
    # Q-Net as published (docs/methods.md): Q-Net's two-level ResNet-101 (layer3 at stride 4, layer4
    # at 8, each reduced to 512 channels), fusion 0.9 / 0.1, refinement on; its script's schedule
    # (30k steps, x0.98 every 1000)
    "ssl-qnet": {
        "method": "qnet-dual",
        "image_size": 256,
        "options": {"alpha": 0.9, "scale": 20.0, "refine_steps": 7, "refine_lr": 0.01, "bg_weight": 0.1,
                    "align_weight": 1.0},
        "backbone": {"type": "deeplab-resnet101", "out_channels": 512, "levels": 2},
        "training": {"regime": "ssl", "steps": 30_000, "lr_step": 1_000, "lr_gamma": 0.98},
    },
    # RPT as its code stands since 2024-03 (docs/methods.md): the two-level ResNet-101, 100 regions
    # on the stride-4 level, BaT x3, fusion mean(regions) + global, the periphery, prototype and
    # self-query losses; its script's schedule (40k steps, x0.98 every 5000)
    "ssl-rpt": {
        "method": "rpt",
        "image_size": 256,
        "options": {"regions": 100, "iterations": 3, "scale": 20.0, "bg_weight": 0.1, "align_weight": 1.0,
                    "periphery_weight": 0.1, "prototype_weight": 0.1, "self_query_weight": 1.0},
        "backbone": {"type": "deeplab-resnet101", "out_channels": 512, "levels": 2},
        "training": {"regime": "ssl", "steps": 40_000, "lr_step": 5_000, "lr_gamma": 0.98},
    },
    # GMRD as published (docs/methods.md): the stride-4 level of the two-level ResNet-101 upsampled to
    # the 256 x 256 slice, 100 foreground and 600 background descriptors, the paper-era descriptor loss
    # (0.5); its script's schedule (36k steps, x0.98 every 3000)
    "ssl-gmrd": {
        "method": "gmrd",
        "image_size": 256,
        "options": {"fg_descriptors": 100, "bg_descriptors": 600, "grid": 256, "bg_weight": 0.1,
                    "align_weight": 1.0, "descriptor_weight": 0.5},
        "backbone": {"type": "deeplab-resnet101", "out_channels": 512, "levels": 2},
        "training": {"regime": "ssl", "steps": 36_000, "lr_step": 3_000, "lr_gamma": 0.98},
    },
    "ssl-regional": {
        **_composed("regional", {"type": "regional", "regions": 10, "include_global": True}, "query-threshold",
                    "ssl", 40_000),
        "options": {"bg_weight": 0.1, "align_weight": 1.0},
        "classifier": {"type": "query-threshold", "scale": 20.0, "init_threshold": -10.0, "refine_steps": 0},
        "training": {"regime": "ssl", "steps": 40_000, "lr_step": 5_000, "lr_gamma": 0.98},
    },
}

# the CPU recipe where the CPU has bfloat16 units (AVX512-BF16 or AMX): 3000 steps under bfloat16
# autocast take ~12.8 min on 2 idle cores, the time of the float32 recipe's 2000. CHAOS-T2 over 5
# folds (docs/results.md): 72.59 Roy, 74.77 with the largest component, against 72.15 and 74.18.
# Elsewhere autocast falls back to float32 with a warning and 3000 steps take ~18.5 min.
PRESETS["ssl-alpnet-cpu-bf16"] = copy.deepcopy(PRESETS["ssl-alpnet-cpu"])
PRESETS["ssl-alpnet-cpu-bf16"]["training"].update(steps=3_000, amp=True)


#: the classifier whose T is one learned scalar (ADNet's); its parameter group ``threshold``: docs/training.md
SCALAR_THRESHOLD = "threshold"
# AdamW moves a parameter by at most ~lr per step, so in one group with the encoder ADNet's scalar T
# would travel about 1 unit over the recipe's 2000 cosine steps, while its init (-10) and the
# thresholds its SGD regime reaches lie several units apart. Its own group at 10 x lr lets T travel
# ~10 units (tests/test_parameter_groups.py holds a known optimum), without weight decay, which would
# pull T towards 0 (every pixel with a positive cosine foreground). A head that predicts T from the
# features (Q-Net's, RPT's, ``query-threshold``) sums many weights that each move ~lr, so it needs no
# faster rate: at 10 x lr one step would move its T by several units. It trains like every other
# weight, as every T does in the papers' SGD regimes (the GPU presets).
THRESHOLD_GROUPS = {"threshold": {"lr_scale": 10.0, "weight_decay": 0.0}}


#: methods that read two feature levels (docs/methods.md)
TWO_LEVEL_METHODS = ("qnet-dual", "rpt")
#: their CPU backbone: the recipe's light encoder with a fourth stage, as Q-Net's ResNet layer3 and
#: layer4: the full third stage at stride 4 (the recipe's ``ssl-alpnet-cpu`` features) is the fine
#: level, a strided stage on top of it the deep one at stride 8; at 128 px levels of 32 x 32 and
#: 16 x 16, a quarter and an eighth of the slice as at 256 px in the papers. (Runs of the earlier
#: form, ``fine_stage`` 2: the second stage as the fine level, still build from their stored spec.)
CPU_TWO_LEVELS = {**_CPU_BACKBONE, "output_stride": 8, "levels": 2, "fine_stage": 3}
#: method options of the CPU form. GMRD: descriptors sampled on the whole 128 x 128 slice (GMRD
#: upsamples to its whole 256 x 256 slice), 20 / 120 descriptors (GMRD's 1 : 6), so its decoders on
#: the 32 x 32 grid cost about what a step of the other methods does (the background decoder's two
#: 3 x 3 convolutions of 600 channels alone take 6.6 G multiply-adds per 32 x 32 map). One training
#: step of 4 episodes takes ~2.2 s on one thread (~1.0 s with the grid at 32 x 32; ``ssl-qnet-cpu``
#: ~1.1 s), docs/methods.md.
#: RPT: 10 regions (its code before 2024-03) on the 32 x 32 grid, a quarter of the pixels of RPT's
#: 64 x 64 one: with 100, most supports would have fewer grid pixels than regions and every pixel
#: would be its own region.
CPU_OPTIONS = {"gmrd": {"fg_descriptors": 20, "bg_descriptors": 120, "grid": 128}, "rpt": {"regions": 10}}


def cpu_form(table: dict[str, Any]) -> dict[str, Any]:
    """A spec table at the CPU recipe's budget: the recipe's backbone (where the method has one; its
    two-level form :data:`CPU_TWO_LEVELS` for :data:`TWO_LEVEL_METHODS`), image size, training
    table and the method's :data:`CPU_OPTIONS`; the method keeps its own parts, regime and, when it
    trains nothing, zero steps. A table that already has such a backbone and the recipe's size (the
    ``-cpu`` presets) is returned unchanged, so its own training (``ssl-alpnet-cpu-bf16``) stays."""
    base, recipe = copy.deepcopy(table), PRESETS["ssl-alpnet-cpu"]
    if base.get("backbone") in (recipe["backbone"], CPU_TWO_LEVELS) and base.get("image_size") == recipe["image_size"]:
        return base
    if "backbone" in base:
        base["backbone"] = copy.deepcopy(CPU_TWO_LEVELS if base.get("method") in TWO_LEVEL_METHODS
                                         else recipe["backbone"])
    base["image_size"] = recipe["image_size"]
    if base.get("method") in CPU_OPTIONS:
        base.setdefault("options", {}).update(CPU_OPTIONS[base["method"]])
    training = base.get("training", {})
    if training.get("steps", 1):
        base["training"] = {**copy.deepcopy(recipe["training"]), "regime": training.get("regime", "ssl")}
        if base.get("classifier", {}).get("type") == SCALAR_THRESHOLD:
            base["training"]["groups"] = copy.deepcopy(THRESHOLD_GROUPS)
    return base


# every other method at the CPU recipe's budget, so that one table compares them at one cost
PRESETS.update({f"{name}-cpu": cpu_form(PRESETS[name])
                for name in ("ssl-adnet", "ssl-qnet-single", "ssl-regional", "ssl-panet", "alpnet", "panet",
                             "senet", "alpnet-init")})

PRESETS.update({f"{name}-cpu": cpu_form(PRESETS[name]) for name in ("ssl-qnet", "ssl-rpt", "ssl-gmrd")})
