"""The paper recipe on this machine: one training step of the ``ssl-alpnet`` preset (the
reference's ResNet-101 body at 256 px, one episode per step, SGD) and one query slice of
inference, each with its ratio to the reference code's figures on this kind of 2-core machine
(5.90 s per training iteration, 1.81 s per query slice).

Run: ``python -m pytest -s benchmarks/test_bench_paper_recipe.py`` on an otherwise idle machine.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

REFERENCE_S_PER_STEP = 5.90
REFERENCE_S_PER_SLICE = 1.81


@pytest.fixture(scope="module")
def method():
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    torch.manual_seed(0)
    spec = preset_spec("ssl-alpnet")
    return spec, build_method(spec)


def _episode(size: int, training: bool):
    from fewshotkit.interfaces.method import Episode

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 1, 1, size, size, generator=gen)
    fg = torch.zeros(1, 1, 1, size, size)
    fg[..., size // 4: size // 2, size // 4: size // 2] = 1
    labels = fg[:, :, 0].long() if training else None
    return Episode(image, torch.cat([1 - fg, fg], dim=2), image.clone(), labels)


def test_paper_recipe_training_step(benchmark, method, seconds):
    spec, model = method
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    episode = _episode(spec.image_size, training=True)
    losses = []

    def step() -> None:
        loss = model(episode).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    assert all(np.isfinite(losses))
    median = seconds("median")
    if median is not None:
        benchmark.extra_info.update(s_per_step=round(median, 3), reference_s=REFERENCE_S_PER_STEP,
                                    speedup_vs_reference=round(REFERENCE_S_PER_STEP / median, 2),
                                    threads=torch.get_num_threads())
        print(f"\nssl-alpnet training step (ResNet-101, 256 px, 1 episode): {median:.2f} s; "
              f"reference code 5.90 s -> {REFERENCE_S_PER_STEP / median:.2f}x")


def test_paper_recipe_query_slice(benchmark, method, seconds):
    from fewshotkit.evaluation.inference import MethodPredictor

    spec, model = method
    model.eval()
    predictor = MethodPredictor(model, spec.image_size, "cpu")
    rng = np.random.default_rng(0)
    image = rng.random((1, 256, 256), dtype=np.float32)
    mask = np.zeros((1, 256, 256), dtype=bool)
    mask[:, 64:128, 64:128] = True

    out = benchmark.pedantic(lambda: predictor(image, mask, image), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (1, 256, 256)
    median = seconds("median")
    if median is not None:
        benchmark.extra_info.update(s_per_slice=round(median, 3), reference_s=REFERENCE_S_PER_SLICE,
                                    speedup_vs_reference=round(REFERENCE_S_PER_SLICE / median, 2))
        print(f"\nssl-alpnet query slice (1 support + 1 query, 256 px): {median:.3f} s; "
              f"reference code 1.81 s -> {REFERENCE_S_PER_SLICE / median:.2f}x")
