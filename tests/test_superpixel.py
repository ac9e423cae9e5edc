"""The superpixel pseudolabelers: body mask, renumbering, minimum size, on synthetic and real slices."""

from __future__ import annotations

import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError


@pytest.fixture
def registry(fresh_host):
    return fresh_host.get_registry()


def phantom(size: int = 96, seed: int = 0) -> np.ndarray:
    """A bright noisy disc (the body) with two darker blobs, on a zero background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.zeros((size, size))
    body = (yy - size / 2) ** 2 / (0.4 * size) ** 2 + (xx - size / 2) ** 2 / (0.45 * size) ** 2 < 1
    image[body] = 400
    image[(yy - 40) ** 2 + (xx - 35) ** 2 < 100] = 700
    image[(yy - 55) ** 2 + (xx - 60) ** 2 < 64] = 200
    return image + rng.normal(0, 10, image.shape) * body


@pytest.mark.parametrize("name", ["felzenszwalb", "slic"])
def test_ids_are_dense_and_inside_body(registry, name):
    image = phantom()
    labels = registry.create("pseudolabeler", name)(image)
    assert labels.dtype == np.int32 and labels.shape == image.shape
    ids = np.unique(labels[labels > 0])
    assert ids.tolist() == list(range(1, len(ids) + 1)) and len(ids) >= 2
    assert (labels[image == 0] == 0).all()


def test_body_mask_can_be_switched_off(registry):
    labels = registry.create("pseudolabeler", "felzenszwalb", use_body_mask=False, min_size=50)(phantom())
    assert (labels > 0).all()


def test_rejects_nan_and_3d(registry):
    labeler = registry.create("pseudolabeler", "felzenszwalb")
    image = phantom()
    image[3, 3] = np.nan
    with pytest.raises(FewshotkitError, match="NaN"):
        labeler(image)
    with pytest.raises(FewshotkitError, match="2D"):
        labeler(np.zeros((2, 8, 8)))


@pytest.mark.data
def test_felzenszwalb_on_a_chaos_slice(registry, chaos_dir):
    import nibabel as nib

    volume = np.asarray(nib.load(chaos_dir / "image_1.nii.gz").dataobj)
    z = volume.shape[-1] // 2
    image = volume[..., z].astype(np.float64)

    plain = registry.create("pseudolabeler", "felzenszwalb", min_size=400, use_body_mask=False)(image)
    sizes = np.bincount(plain.ravel())[1:]
    assert sizes.min() >= 400

    masked = registry.create("pseudolabeler", "felzenszwalb", min_size=400)(image)
    from fewshotkit_superpixel.body_mask import body_mask

    body = body_mask(image)
    assert 0.05 < body.mean() < 0.95  # a plausible abdomen, neither empty nor the whole frame
    assert (masked[~body] == 0).all()
    ids = np.unique(masked[masked > 0])
    assert ids.tolist() == list(range(1, len(ids) + 1)) and len(ids) > 5
