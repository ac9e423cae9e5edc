"""One frame for support and query: the support's pixel size, one canvas, one orientation, and back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fewshotkit.evaluation.frame import common_frame, describe


def test_a_finer_query_of_the_same_field_of_view_is_resampled_to_the_support_pixel():
    support, query = common_frame((30, 256, 256), np.diag([1.25, 1.25, 5.0, 1]), (5.0, 1.25, 1.25),
                                  (40, 512, 512), np.diag([0.625, 0.625, 4.0, 1]), (4.0, 0.625, 0.625), "RAS")
    assert support.ops == [] and query.ops == [{"op": "resize", "from": [512, 512], "to": [256, 256]}]
    assert query.spacing == pytest.approx((4.0, 1.25, 1.25)) and query.canvas is None
    volume = np.random.default_rng(0).random((40, 512, 512)).astype(np.float32)
    assert query.apply(volume).shape == (40, 256, 256) and query.undo(query.apply(volume)).shape == volume.shape
    assert describe(support, query) == "query resampled from 0.625 x 0.625 mm pixels to the support's 1.25 x 1.25 mm"


def test_a_wider_field_of_view_pads_the_other_scan_to_one_square_and_nothing_is_cropped():
    support, query = common_frame((30, 256, 256), np.eye(4), (5.0, 1.25, 1.25),
                                  (30, 384, 320), np.eye(4), (5.0, 1.26, 1.25), "RAS")  # 1.26: within tolerance
    assert not query.resampled and support.canvas == query.canvas == (384, 384)
    assert support.ops == [{"op": "crop_pad", "pads": [[64, 64], [64, 64]]}]
    assert query.ops == [{"op": "crop_pad", "pads": [[0, 0], [32, 32]]}]
    label = np.zeros((30, 256, 256), np.uint8)
    label[:, 100:120, 50:60] = 1
    framed = support.apply(label, is_label=True)
    assert framed.shape == (30, 384, 384) and framed.sum() == label.sum()
    assert np.array_equal(support.undo(framed), label)
    image = np.full((30, 384, 320), 3.0, np.float32)
    image[:, 0, 0] = -2.0
    assert query.apply(image)[:, :, :32].max() == -2.0  # images are padded with their minimum
    assert describe(support, query) == "support and query padded to 384 x 384 pixels (one field of view)"


def test_pixel_sizes_too_far_apart_are_not_trusted():
    with pytest.warns(RuntimeWarning, match="too far apart"):
        _, query = common_frame((30, 256, 256), np.eye(4), (5.0, 1.25, 1.25),
                                (30, 256, 256), np.eye(4), (5.0, 12.5, 12.5), "RAS")  # cm read as mm
    assert not query.resampled


class CopySupport:
    """A stand-in model that needs the support and the query on one grid: it predicts the support's mask."""

    multiway = False

    def probabilities(self, support_images, support_masks, query_images):
        assert support_masks.shape[-2:] == query_images.shape[-2:], "support and query on different grids"
        mask = support_masks.any(axis=0).astype(np.float32)
        return np.repeat(mask[None], len(query_images), axis=0)


@pytest.mark.parametrize("case", ["wider field of view", "smaller field of view", "coarser pixels",
                                  "mirrored and feet first", "all at once"])
def test_a_query_from_another_scanner_lands_on_the_support_grid_and_comes_back(case):
    from fewshotkit.apps.segment import segment_in_common_frame
    from fewshotkit.evaluation.options import InferenceOptions

    organ = np.zeros((12, 64, 64), np.uint8)
    organ[:, 20:40, 10:30] = 1
    image = organ * 2.0 + 1.0
    affine, spacing = np.diag([2.0, 2.0, 5.0, 1.0]), (5.0, 2.0, 2.0)
    if case == "wider field of view":  # the same anatomy and pixel size, 32 more pixels on every side
        q_label = np.pad(organ, ((0, 0), (32, 32), (32, 32)))
        q_affine, q_spacing = affine, spacing
    elif case == "coarser pixels":  # the same field of view in 4 mm pixels
        q_label = organ[:, ::2, ::2]
        q_affine, q_spacing = np.diag([4.0, 4.0, 5.0, 1.0]), (5.0, 4.0, 4.0)
    elif case == "smaller field of view":  # 5 pixels less above and left, 6 below and right (odd split)
        q_label = organ[:, 5:58, 5:58]
        q_affine, q_spacing = affine, spacing
    elif case == "mirrored and feet first":  # LPI: x, y and z reversed
        q_label = organ[::-1, ::-1, ::-1]
        q_affine, q_spacing = np.diag([-2.0, -2.0, -5.0, 1.0]), spacing
    else:  # LPI, 4 mm pixels and 32 more of them on every side
        q_label = np.pad(organ[::-1, ::-2, ::-2], ((0, 0), (16, 16), (16, 16)))
        q_affine, q_spacing = np.diag([-4.0, -4.0, -5.0, 1.0]), (5.0, 4.0, 4.0)
    q_image = q_label * 2.0 + 1.0
    support = SimpleNamespace(image=image, label=organ, affine=affine, spacing=spacing)
    query = SimpleNamespace(image=q_image, label=None, affine=q_affine, spacing=q_spacing)
    seg, _, _ = segment_in_common_frame(CopySupport(), support, query, [1], None,
                                        options=InferenceOptions(all_slices=True, chunks=1))
    assert seg.labels.shape == q_label.shape
    assert np.array_equal(seg.labels, q_label)
