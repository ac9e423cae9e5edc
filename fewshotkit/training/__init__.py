"""Episodic training (self-supervised superpixel episodes or annotated episodes), checkpoints, DDP.

Importing this package imports torch; CLI modules import it inside their commands.
"""

from fewshotkit.training.checkpoint import LoadedMethod, load_method
from fewshotkit.training.config import AugmentConfig, TrainingConfig
from fewshotkit.training.loop import train

__all__ = ["AugmentConfig", "LoadedMethod", "TrainingConfig", "load_method", "train"]
