"""Several structures with every method: a classifier that scores one class per episode runs once
per class and the masks are merged (a voxel two classes claim goes to the more probable)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from conftest import pseudolabelled_store
from fewshotkit.host.plugin_host import PluginHost

REGISTRY = PluginHost().registry  # entry points only: every classifier a plugin registers
TINY = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
        "training.log_every=1", "training.checkpoint_every=100", "training.batch_size=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return pseudolabelled_store(tmp_path_factory.mktemp("multi") / "syn.h5", min_size=100, volumes=5, seed=0,
                                slices=12, size=64)


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A phantom and its label map (classes 1..4) as NIfTI files; segmented as its own query."""
    from fewshotkit.data.ingest.synthetic import phantom

    root = tmp_path_factory.mktemp("scan")
    image, label = phantom(7, 0, 12, 64)
    affine = np.diag([2.5, 2.5, 5.0, 1.0])
    for name, array in (("image", image), ("label", label)):
        nib.save(nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), affine), str(root / f"{name}.nii.gz"))
    return root / "image.nii.gz", root / "label.nii.gz"


def _train(preset: str, extra: list[str], store, out, steps: int):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    spec = apply_overrides(preset_spec(preset), [*TINY, *extra])
    return train(spec, store, out, steps=steps, device="cpu", seed=0, show_progress=False)


def _segment(run_cli, checkpoint, scan, out, *classes: str):
    args = [arg for value in classes for arg in ("--class", value)]
    return run_cli("segment", "--checkpoint", str(checkpoint), "--support", str(scan[0]), "--support-label",
                   str(scan[1]), "--query", str(scan[0]), "--all-slices", "--device", "cpu", "-o", str(out), *args)


@pytest.mark.parametrize("name", REGISTRY.names("classifier"))
def test_every_classifier_segments_two_classes(name, run_cli, store, scan, tmp_path):
    from fewshotkit.method.checkpoint import load_method

    run = _train("ssl-alpnet-cpu", [f"classifier.type={name}"], store, tmp_path / "run", steps=1)
    method = load_method(run, "cpu").method
    one_way = method.classifier.max_ways is not None
    assert method.multiway is not one_way  # derived from the classifier
    out = tmp_path / "pred.nii.gz"
    result = _segment(run_cli, run, scan, out, "1", "4")
    assert result.exit_code == 0, result.output
    assert ("one forward pass per class and query chunk" if one_way else "one forward pass per query chunk for all "
            "classes") in " ".join(result.output.split())
    assert set(np.unique(np.asarray(nib.load(out).dataobj))) <= {0, 1, 4}


@pytest.mark.parametrize("preset", ["ssl-adnet-cpu", "ssl-qnet-cpu", "ssl-regional-cpu"])
def test_class_all_with_one_class_methods_holds_every_class(preset, run_cli, store, scan, tmp_path):
    run = _train(preset, [], store, tmp_path / "run", steps=4)
    out = tmp_path / "pred.nii.gz"
    result = _segment(run_cli, run, scan, out, "all")
    assert result.exit_code == 0, result.output
    # every class is in the map (a few training steps may leave no background: not asserted)
    assert {1, 2, 3, 4} <= set(np.unique(np.asarray(nib.load(out).dataobj)).tolist())
