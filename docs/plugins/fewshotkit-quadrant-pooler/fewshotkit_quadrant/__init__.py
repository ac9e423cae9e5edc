"""An example third-party fewshotkit plugin: registers the pooler ``quadrant``."""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_poolers(register):
    # A "module:Class" string keeps torch out of start-up until the pooler is built.
    register("quadrant", "fewshotkit_quadrant.pooler:QuadrantPooler",
             description="masked-average prototype per class and image quadrant")
