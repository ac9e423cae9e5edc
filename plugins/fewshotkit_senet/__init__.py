"""Built-in plugin: an SE-Net-style few-shot segmenter (Roy et al. 2020), a monolithic method."""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_methods(register):
    register(
        "senet",
        "fewshotkit_senet.model:SENet",
        description="SE-Net-style few-shot net (Roy et al. 2020): conditioner + segmenter, spatial SE at every level",
    )
