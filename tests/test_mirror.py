"""Test-time mirroring (``test_mirror``): each prediction averaged with the left-right mirrored episode's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.inference import MethodPredictor, predictor_for
from fewshotkit.interfaces.method import MethodOutput


class Ramp(torch.nn.Module):
    """Foreground logit = query intensity + a ramp rising left to right: not mirror-symmetric."""

    multiway = True

    def forward(self, episode):
        query = episode.query_images[:, :, 0]  # (B, Q, H, W)
        ramp = torch.linspace(-2, 2, query.shape[-1])
        fg = query + ramp
        return MethodOutput(torch.stack([torch.zeros_like(fg), fg], dim=2))


def _episode(width: int = 16):
    support = np.zeros((1, 8, width), np.float32)
    masks = np.zeros((1, 8, width), bool)
    masks[0, 2:6, 3:7] = True
    query = np.random.default_rng(0).normal(size=(2, 8, width)).astype(np.float32)
    return support, masks, query


def test_mirrored_prediction_is_the_mean_of_both_passes():
    support, masks, query = _episode()
    plain = MethodPredictor(Ramp(), None).probabilities(support, masks, query)
    mirrored = MethodPredictor(Ramp(), None, mirror=True).probabilities(support, masks, query)
    flipped = MethodPredictor(Ramp(), None).probabilities(support[..., ::-1], masks[..., ::-1], query[..., ::-1])
    np.testing.assert_allclose(mirrored, (plain + flipped[..., ::-1]) / 2, rtol=1e-6)
    assert not np.allclose(mirrored, plain)
    # on a symmetric query the ramp's bias cancels: the mirrored prediction is symmetric too
    symmetric = np.zeros((1, 8, 16), np.float32)
    out = MethodPredictor(Ramp(), None, mirror=True).probabilities(support, masks, symmetric)
    np.testing.assert_allclose(out, out[..., ::-1], rtol=1e-6)


def test_spec_key_reaches_the_predictor_and_stays_out_of_default_specs():
    from fewshotkit.method.overrides import apply_inference_overrides
    from fewshotkit.method.spec import MethodSpec, preset_spec

    spec = preset_spec("ssl-alpnet-cpu")
    assert "test_mirror" not in spec.to_dict()  # specs without it keep their cache keys
    mirrored = apply_inference_overrides(spec, ["test_mirror=true", "support_zoom=0.1"])
    assert mirrored.test_mirror and MethodSpec.from_dict(mirrored.to_dict()).test_mirror
    predictor = predictor_for(Ramp(), mirrored)
    assert predictor.predictor.mirror  # inside the support zoom
    assert not predictor_for(Ramp(), spec).mirror
    with pytest.raises(FewshotkitError, match="'test_mirror' must be true or false, got 1"):
        apply_inference_overrides(spec, ["test_mirror=1"])
