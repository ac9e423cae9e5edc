"""Per-step training cost of the CPU presets of the threshold methods next to SSL-ALPNet-CPU, and
the inference cost of Q-Net's test-time prototype refinement (the published form, ``ssl-qnet-cpu``:
off against its 7 steps). Report-only: nothing is asserted
about speed (the goal is a step within 1.5x of ssl-alpnet-cpu's), only that the steps train.

Run: ``OMP_NUM_THREADS=1 python -m pytest benchmarks/test_bench_methods.py -s`` (the ratios are
printed; keep the machine otherwise idle).
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

BASELINE = "ssl-alpnet-cpu"
PRESETS = (BASELINE, "ssl-adnet-cpu", "ssl-qnet-cpu", "ssl-qnet-single-cpu", "ssl-regional-cpu", "ssl-rpt-cpu",
           "ssl-gmrd-cpu")
ROUNDS = 8
_step_seconds: dict[str, float] = {}  # preset -> median seconds per step, filled in PRESETS order


@pytest.mark.parametrize("preset", PRESETS)
def test_training_step_cost(benchmark, ssl_store, ssl_step, preset):
    from fewshotkit.method.spec import preset_spec

    step = ssl_step(preset_spec(preset), ssl_store)
    config = step.config
    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    times = [d + m for d, m in zip(step.data, step.model)]
    median = float(np.median(times[1:]))  # the warm-up round is not counted
    _step_seconds[preset] = median
    base = _step_seconds.get(BASELINE)
    ratio = None if base is None else median / base
    benchmark.extra_info.update(preset=preset, batch_size=config.batch_size, step_s=round(median, 4),
                                ratio_to_alpnet_cpu=None if ratio is None else round(ratio, 3),
                                threads=torch.get_num_threads())
    print(f"\n{preset}: {median * 1e3:.0f} ms per step of {config.batch_size} episodes"
          + ("" if ratio is None else f", {ratio:.2f}x {BASELINE}"))
    assert all(np.isfinite(step.losses))


@pytest.mark.parametrize("refine_steps", [0, 7])
def test_qnet_refinement_inference_cost(benchmark, refine_steps):
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    spec = apply_overrides(preset_spec("ssl-qnet-cpu"), [f"options.refine_steps={refine_steps}"])
    torch.manual_seed(0)
    method = build_method(spec).eval()
    size = spec.image_size
    fg = torch.zeros(1, 1, 1, size, size)
    fg[..., size // 4 : size // 2, size // 4 : size // 2] = 1
    episode = Episode(torch.randn(1, 1, 1, size, size), torch.cat([1 - fg, fg], dim=2), torch.randn(1, 8, 1, size, size))

    def infer() -> torch.Tensor:
        with torch.inference_mode():
            return method(episode).logits

    logits = benchmark.pedantic(infer, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(refine_steps=refine_steps, query_slices=8)
    assert logits.shape == (1, 8, 2, size, size) and torch.isfinite(logits).all()
