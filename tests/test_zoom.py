"""Support zoom: support and query cropped to the support's window before the model sees them."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.zoom import SupportZoom, zoom_window


class Blurry:
    """Sees every slice at 8 x 8 (like a model's coarse feature grid) and finds the pixels as bright
    as the support's structure: a 3-pixel structure in a 32-pixel slice blurs away, in a 9-pixel
    window it does not."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, ...]] = []

    def probabilities(self, support_images, support_masks, query_images):
        self.seen.append(query_images.shape)
        coarse = np.stack([resize(q, (8, 8), order=1, anti_aliasing=True) for q in query_images])
        found = (coarse > 0.9).astype(np.float32)
        return np.stack([resize(f, q.shape, order=0) for f, q in zip(found, query_images)]).astype(np.float32)

    def __call__(self, support_images, support_masks, query_images):
        return self.probabilities(support_images, support_masks, query_images) > 0.5


class Everywhere:
    """Foreground everywhere, N-way: background 0, every class 1 / N."""

    def class_probabilities(self, support_images, support_masks, query_images):
        n = support_masks.shape[1]
        out = np.full((query_images.shape[0], n + 1, *query_images.shape[-2:]), 1.0 / n, np.float32)
        out[:, 0] = 0
        return out

    def probabilities(self, support_images, support_masks, query_images):
        return np.ones(query_images.shape, np.float32)


def test_window_is_a_square_around_the_support_clipped_to_the_slice():
    mask = np.zeros((2, 32, 32), bool)
    assert zoom_window(mask, 0.1) is None
    mask[1, 4:8, 10:14] = True
    assert zoom_window(mask, 0.125) == pytest.approx((0.0, 12 / 32, 6 / 32, 18 / 32))
    corner = np.zeros((1, 32, 32), bool)
    corner[0, 0:2, 30:32] = True  # side 2 + 6.4 px, pushed inside the slice
    assert zoom_window(corner, 0.1) == pytest.approx((0.0, 8.4 / 32, 23.6 / 32, 1.0))
    assert zoom_window(mask, 1.0) == (0.0, 1.0, 0.0, 1.0)


def test_zoom_finds_a_small_structure_the_full_slice_blurs_away():
    from fewshotkit.evaluation.protocol import evaluate_fold
    from test_protocol import Fold, MemoryStore

    images, labels = {}, {}
    for name, (y, x) in {"s": (14, 14), "a": (15, 13), "b": (13, 16)}.items():  # the organ moves a little
        label = np.zeros((6, 32, 32), np.uint8)
        label[1:5, y : y + 3, x : x + 3] = 1
        images[name], labels[name] = label.astype(np.float32), label
    store = MemoryStore(images, labels, {1: "organ"})
    fold = Fold(0, ("a", "b"), "s")
    plain = evaluate_fold(store, fold, Blurry(), protocol="roy")
    model = Blurry()
    zoomed = evaluate_fold(store, fold, SupportZoom(model, 0.1), protocol="roy")
    assert plain.mean() == 0.0
    assert zoomed.mean() > 60
    assert {shape[-2:] for shape in model.seen} == {(9, 9)}, "the model sees the 3 + 2 x 3.2 px window"


def test_outside_the_window_is_background_and_sizes_may_differ():
    support = np.zeros((1, 32, 32), np.float32)
    mask = np.zeros((1, 32, 32), bool)
    mask[0, 8:16, 8:16] = True  # window rows / columns 0.125 .. 0.625 at margin 0.125
    query = np.zeros((2, 64, 64), np.float32)  # twice the support's size: the window scales with it
    zoom = SupportZoom(Everywhere(), 0.125)
    found = zoom.probabilities(support, mask, query)
    assert found[:, 8:40, 8:40].all() and found.sum() == 2 * 32 * 32
    joint = zoom.class_probabilities(support, mask[:, None].repeat(2, axis=1), query)
    assert joint.shape == (2, 3, 64, 64)
    assert (joint[:, 0, :8] == 1).all() and (joint[:, 1:, 8:40, 8:40] == 0.5).all()
    assert np.allclose(joint.sum(axis=1), 1)
    empty = zoom.probabilities(support, np.zeros_like(mask), query)
    assert empty.all(), "no support foreground: no window, the whole slice"


def test_a_bare_predictor_stays_one_class_at_a_time_when_zoomed():
    """A predictor without ``multiway`` / ``class_probabilities`` is segmented class by class, zoomed or not."""
    from fewshotkit.evaluation.options import InferenceOptions
    from fewshotkit.evaluation.scan import segment_volume

    class Bare:
        def probabilities(self, support_images, support_masks, query_images):
            return (query_images > 0.5).astype(np.float32)

    image = np.zeros((6, 32, 32), np.float32)
    image[:, 8:14, 8:14] = 1.0
    label = np.zeros(image.shape, np.uint8)
    label[:, 8:14, 8:14], label[:, 20:24, 20:24] = 1, 2
    for predictor in (Bare(), SupportZoom(Bare(), 0.1)):
        result = segment_volume(predictor, image, label, image, [1, 2], options=InferenceOptions(all_slices=True))
        assert not result.joint and (result.labels[:, 8:14, 8:14] == 1).all()


def test_spec_option_inference_override_and_predictor():
    from fewshotkit.evaluation.inference import MethodPredictor, predictor_for
    from fewshotkit.method.overrides import apply_inference_overrides
    from fewshotkit.method.spec import dump_spec, preset_spec
    from fewshotkit.method.build import parse_spec

    spec = preset_spec("ssl-alpnet-cpu")
    assert spec.support_zoom is None and "support_zoom" not in spec.to_dict()
    zoomed = apply_inference_overrides(spec, ["support_zoom=0.1"])
    assert zoomed.support_zoom == 0.1 and parse_spec(dump_spec(zoomed)).support_zoom == 0.1
    assert apply_inference_overrides(zoomed, ["support_zoom=null"]).support_zoom is None
    assert apply_inference_overrides(spec, ["support_zoom=0"]).support_zoom == 0.0, "0: the support's own box"
    for bad in ("-0.1", "1.5", "true", "wide"):
        with pytest.raises(FewshotkitError, match="'support_zoom' must be a margin in"):
            apply_inference_overrides(spec, [f"support_zoom={bad}"])

    wrapped = predictor_for(None, zoomed)
    assert isinstance(wrapped, SupportZoom) and isinstance(wrapped.predictor, MethodPredictor)
    assert isinstance(predictor_for(None, spec), MethodPredictor)
