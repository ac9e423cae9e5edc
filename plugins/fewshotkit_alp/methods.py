"""The ALPNet method: a composed prototype method with ALP pooling and the cosine-softmax classifier."""

from __future__ import annotations

from fewshotkit.composed import ComposedPrototypeMethod
from fewshotkit.interfaces.backbone import Backbone
from fewshotkit.interfaces.classifier import Classifier
from fewshotkit.interfaces.pooler import PrototypePooler


def alpnet(
    backbone: Backbone,
    pooler: PrototypePooler,
    classifier: Classifier,
    bg_weight: float = 0.05,
    align_weight: float = 1.0,
) -> ComposedPrototypeMethod:
    """ALPNet (Ouyang et al. 2020): weighted CE (bg ``bg_weight``, fg 1) + ``align_weight`` x PANet alignment."""
    return ComposedPrototypeMethod(backbone, pooler, classifier, bg_weight=bg_weight, align_weight=align_weight)
