"""fewshotkit: few-shot medical image segmentation composed from plugins.

Importing this package is cheap: torch and timm are imported only by the code that computes.
``fewshotkit.load``, ``fewshotkit.Model`` and ``fewshotkit.save_labels`` (the Python API,
:mod:`fewshotkit.apps.api`) and
``fewshotkit.InferenceOptions`` (:mod:`fewshotkit.evaluation.options`) are imported on first use.
"""

from typing import Any

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.version import __version__
from fewshotkit.host.hookspecs import hookimpl

__all__ = ["FewshotkitError", "InferenceOptions", "Model", "hookimpl", "load", "save_labels", "__version__"]

_LAZY = {"load": "fewshotkit.apps.api", "Model": "fewshotkit.apps.api", "save_labels": "fewshotkit.apps.api",
         "InferenceOptions": "fewshotkit.evaluation.options"}


def __getattr__(name: str) -> Any:
    """Lazy exports: ``fewshotkit.load`` imports :mod:`fewshotkit.apps.api` on first access."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fewshotkit' has no attribute '{name}'")
