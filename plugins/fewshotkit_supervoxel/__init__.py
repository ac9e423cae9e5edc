"""Built-in plugin: 3D supervoxel pseudolabels (SLIC over a whole volume, with its voxel spacing).

It reuses the superpixel plugin's automatic body threshold (``fewshotkit_superpixel.body_mask``).
"""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_pseudolabelers(register):
    register(
        "supervoxel",
        "fewshotkit_supervoxel.labelers:Supervoxels",
        description="3D SLIC supervoxels per volume, spacing-aware, inside the body (ADNet-style SSL)",
    )
