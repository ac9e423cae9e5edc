"""Built-in plugin: superpixel pseudolabelers (Felzenszwalb, SLIC) restricted to the body."""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_pseudolabelers(register):
    register(
        "felzenszwalb",
        "fewshotkit_superpixel.labelers:Felzenszwalb",
        description="Felzenszwalb graph superpixels per slice, inside the body (SSL-ALPNet)",
    )
    register(
        "slic",
        "fewshotkit_superpixel.labelers:Slic",
        description="SLIC k-means superpixels per slice, inside the body",
    )
