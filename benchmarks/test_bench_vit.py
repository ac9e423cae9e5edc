"""Per-step training cost of the ViT backbone (DINOv2 ViT-S/14, random weights) next to the CPU
recipe's light encoder, in the same SSL-ALPNet method at 128 px (a 10 x 10 patch grid for the ViT,
32 x 32 features for the light encoder). Report-only: the ratio is printed and saved, only the
steps' losses are checked.

Run: ``OMP_NUM_THREADS=1 python -m pytest benchmarks/test_bench_vit.py -s`` (keep the machine
otherwise idle).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

ROUNDS = 5
BACKBONES = {
    "light": [],
    "vit": ["backbone.type=vit", "backbone.in_channels=1", "backbone.out_channels=256"],
}
_step_seconds: dict[str, float] = {}


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_training_step_cost_per_backbone(benchmark, ssl_store, ssl_step, backbone):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec

    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), BACKBONES[backbone])
    step = ssl_step(spec, ssl_store)
    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    median = float(np.median([d + m for d, m in zip(step.data, step.model)][1:]))  # warm-up not counted
    _step_seconds[backbone] = median
    base = _step_seconds.get("light")
    ratio = None if base is None or backbone == "light" else median / base
    benchmark.extra_info.update(backbone=backbone, batch_size=step.config.batch_size, step_s=round(median, 4),
                                ratio_to_light=None if ratio is None else round(ratio, 2),
                                threads=torch.get_num_threads())
    print(f"\n{backbone}: {median * 1e3:.0f} ms per step of {step.config.batch_size} episodes"
          + ("" if ratio is None else f", {ratio:.1f}x the light encoder"))
    assert all(np.isfinite(step.losses))
