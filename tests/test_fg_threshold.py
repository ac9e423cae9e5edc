"""The foreground threshold (``fg_threshold``): a prior shift on the background logit at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.inference import MethodPredictor, predictor_for
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.scan import segment_volume
from fewshotkit.interfaces.method import MethodOutput


class Intensity(torch.nn.Module):
    """Logits: background 0, class c (1..N) = the query's intensity - (c - 1), so the classes differ."""

    multiway = True

    def forward(self, episode):
        query = episode.query_images[:, :, 0]  # (B, Q, H, W)
        ways = episode.support_masks.shape[2] - 1
        return MethodOutput(torch.stack([torch.zeros_like(query)] + [query - c for c in range(ways)], dim=2))


def _episode():
    support = np.zeros((1, 4, 4), np.float32)
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 1:3, 1:3] = True
    query = np.linspace(-3, 3, 2 * 16, dtype=np.float32).reshape(2, 4, 4)
    return support, masks, query


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_one_way_foreground_is_the_softmax_above_the_threshold(threshold):
    support, masks, query = _episode()
    plain = MethodPredictor(Intensity(), None).probabilities(support, masks, query)
    shifted = MethodPredictor(Intensity(), None, fg_threshold=threshold)
    np.testing.assert_array_equal(shifted(support, masks, query), plain > threshold)
    assert 0 < (plain > threshold).sum() < plain.size  # the cut falls inside the query's range


def test_n_way_argmax_keeps_the_class_order_and_drops_weak_pixels():
    support, masks, query = _episode()
    two = np.stack([masks, masks], axis=1)  # (S, 2, H, W)
    plain = MethodPredictor(Intensity(), None).class_probabilities(support, two, query)
    shifted = MethodPredictor(Intensity(), None, fg_threshold=0.8).class_probabilities(support, two, query)
    np.testing.assert_allclose(shifted.sum(axis=1), 1, rtol=1e-5)
    fg = shifted.argmax(axis=1) > 0
    assert fg.sum() < (plain.argmax(axis=1) > 0).sum()
    # among the pixels still foreground, the classes rank as before (the shift touches only the background)
    np.testing.assert_array_equal(shifted.argmax(axis=1)[fg], plain.argmax(axis=1)[fg])


def test_whole_scan_segmentation_applies_it():
    image = np.linspace(-3, 3, 6 * 8 * 8, dtype=np.float32).reshape(6, 8, 8)
    label = np.zeros((6, 8, 8), np.uint8)
    label[1:5, 2:6, 2:6] = 1
    plain = segment_volume(MethodPredictor(Intensity(), None), image, label, image, [1],
                           options=InferenceOptions(all_slices=True))
    strict = segment_volume(MethodPredictor(Intensity(), None, fg_threshold=0.9), image, label, image, [1],
                            options=InferenceOptions(all_slices=True))
    expected = MethodPredictor(Intensity(), None).probabilities(image[:1], label[:1] == 1, image) > 0.9
    np.testing.assert_array_equal(strict.labels == 1, expected)
    assert (strict.labels == 1).sum() < (plain.labels == 1).sum()


def test_spec_key_reaches_the_predictor_and_stays_out_of_default_specs():
    from fewshotkit.method.overrides import apply_inference_overrides
    from fewshotkit.method.spec import MethodSpec, preset_spec

    spec = preset_spec("ssl-alpnet-cpu")
    assert "fg_threshold" not in spec.to_dict()  # specs without it keep their cache keys
    strict = apply_inference_overrides(spec, ["fg_threshold=0.7", "support_zoom=0.1"])
    assert MethodSpec.from_dict(strict.to_dict()).fg_threshold == 0.7
    assert apply_inference_overrides(strict, ["fg_threshold=null"]).fg_threshold == 0.5  # back to the default
    assert predictor_for(Intensity(), strict).predictor.bg_shift == pytest.approx(np.log(0.7 / 0.3))
    assert predictor_for(Intensity(), spec).bg_shift == 0
    with pytest.raises(FewshotkitError, match="fg_threshold must be a probability in \\(0, 1\\), got 1"):
        MethodPredictor(Intensity(), None, fg_threshold=1)  # the predictor built directly, not from a spec
    for bad in ("0", "1", "1.5", "true", "high"):
        with pytest.raises(FewshotkitError, match="'fg_threshold' must be a probability in \\(0, 1\\)"):
            apply_inference_overrides(spec, [f"fg_threshold={bad}"])
