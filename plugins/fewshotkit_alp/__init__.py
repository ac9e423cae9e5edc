"""Built-in plugin: adaptive local prototype pooling (ALP) and the cosine-softmax classifier.

ALPNet is the core's ``composed`` method (alias ``alpnet``) with these parts.
"""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_poolers(register):
    register(
        "alp",
        "fewshotkit_alp.pooling:ALPPooler",
        description="adaptive local prototypes (window 4 train / 2 test, T=0.95) + global fg prototype",
    )
    register(
        "alp-local",
        "fewshotkit_alp.pooling:alp_local",
        description="adaptive local prototypes only (global prototype as fallback)",
    )


@hookimpl
def register_classifiers(register):
    register(
        "cosine-softmax",
        "fewshotkit_alp.classifier:CosineSoftmaxClassifier",
        description="cosine x 20, softmax-weighted fusion over a class's prototypes (ALPNet Eq. 4-6)",
    )
