"""fewshotkit: few-shot medical image segmentation composed from plugins.

Importing this package is cheap: torch and timm are imported only by the code that computes.
"""

from fewshotkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
