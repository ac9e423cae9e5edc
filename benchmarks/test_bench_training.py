"""Training throughput on the CPU: episodes per second per backbone, and the split between data
(+ augmentation) time and model time (forward, backward, optimiser step).

Run: ``python -m pytest benchmarks/test_bench_training.py`` (``--benchmark-disable`` for a smoke
run). Asserts that data + augmentation stays under 10 % of a step and that the step trains.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshotkit.core.device import cpu_bf16_supported

_RESNET18 = {"type": "timm", "model": "resnet18", "in_channels": 1, "output_stride": 8}
CASES = {
    # name: (image size, backbone table, None for the ssl-alpnet-cpu preset's, or "amp" for that
    # preset with bfloat16 autocast, rounds)
    "light-128 (ssl-alpnet-cpu)": (128, None, 10),
    "light-128 bf16 (ssl-alpnet-cpu --amp)": (128, "amp", 10),
    "light-160 bf16 (--set image_size=160 --amp)": (160, "amp", 10),
    "light-256": (256, None, 5),
    "resnet18-128": (128, _RESNET18, 5),
    "resnet18-256": (256, _RESNET18, 3),
    "resnet101-256 (paper)": (256, {"type": "deeplab-resnet101"}, 2),
}


def _spec(image_size: int, backbone: dict | str | None):
    from fewshotkit.method.spec import preset_spec

    spec = preset_spec("ssl-alpnet-cpu")
    spec.image_size = image_size
    if backbone == "amp":  # the recipe with bfloat16 autocast (CPUs with AVX512-BF16 or AMX)
        spec.training["amp"] = True
    elif backbone is not None:
        spec.parts["backbone"] = dict(backbone)
    return spec


@pytest.mark.parametrize("case", list(CASES))
def test_training_step_throughput(benchmark, ssl_store, ssl_step, case):
    image_size, backbone, rounds = CASES[case]
    if backbone == "amp" and not cpu_bf16_supported():
        pytest.skip("this CPU has no bfloat16 units (AVX512-BF16 or AMX): autocast would be emulated, "
                    "many times slower than float32, and `train --amp` trains in float32 here")
    spec = _spec(image_size, backbone)
    step = ssl_step(spec, ssl_store)
    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    data, model = np.median(step.data), np.median(step.model)
    batch = step.config.batch_size
    episodes_per_s = batch / (data + model)
    benchmark.extra_info.update(
        backbone=spec.parts["backbone"]["type"], image_size=image_size, batch_size=batch, amp=step.amp,
        episodes_per_s=round(float(episodes_per_s), 3), data_s=round(float(data), 5), model_s=round(float(model), 4),
        data_fraction=round(float(data / (data + model)), 4), threads=torch.get_num_threads(),
    )
    print(f"\n{case}: {episodes_per_s:.2f} episodes/s (batch {batch}); "
          f"data+aug {data * 1e3:.1f} ms, model {model * 1e3:.1f} ms per step ({100 * data / (data + model):.1f} %)")
    assert all(np.isfinite(step.losses))
    assert data < 0.10 * (data + model), f"data + augmentation take {100 * data / (data + model):.1f} % of a step"
