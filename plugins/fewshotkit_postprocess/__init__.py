"""Built-in plugin: post-processors cleaning a query scan's prediction with 3D connected components.

Registered lazily ("module:attr"), so listing components imports neither SciPy nor this
plugin's code.
"""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_postprocessors(register):
    register(
        "largest-component",
        "fewshotkit_postprocess.components:LargestComponent",
        description="keep only the largest 3D connected component",
    )
    register(
        "min-size",
        "fewshotkit_postprocess.components:MinSize",
        description="remove 3D components smaller than min_size voxels (unit='voxels') or mm^3 (unit='mm3')",
    )
    register(
        "z-continuity",
        "fewshotkit_postprocess.components:ZContinuity",
        description="drop slices outside the z-span of the largest 3D component",
    )
    register(
        "nearest-to-support",
        "fewshotkit_postprocess.components:NearestToSupport",
        description="keep the 3D component nearest the support mask's position (not the other kidney)",
    )
