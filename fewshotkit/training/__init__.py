"""Episodic training (self-supervised superpixel episodes or annotated episodes), checkpoints, DDP.

Importing this package imports nothing heavy; ``train``, ``load_method`` and the config classes are
imported on first access (the modules inside the package import its submodules directly).
"""

from typing import Any

__all__ = ["AugmentConfig", "LoadedMethod", "TrainingConfig", "load_method", "train"]

_LAZY = {"AugmentConfig": "fewshotkit.training.config", "TrainingConfig": "fewshotkit.training.config",
         "LoadedMethod": "fewshotkit.method.checkpoint", "load_method": "fewshotkit.method.checkpoint",
         "train": "fewshotkit.training.loop"}


def __getattr__(name: str) -> Any:
    """Lazy exports: ``fewshotkit.training.train`` imports :mod:`fewshotkit.training.loop` on first access."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fewshotkit.training' has no attribute '{name}'")
