"""Built-in plugin: PANet parts: masked-average prototypes and the cosine classifier.

PANet is the core's ``composed`` method (alias ``panet``) with these parts.
"""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_poolers(register):
    register(
        "masked-avg",
        "fewshotkit_panet.parts:MaskedAvgPooler",
        description="PANet: one masked-average prototype per class",
    )


@hookimpl
def register_classifiers(register):
    register(
        "cosine",
        "fewshotkit_panet.parts:CosineClassifier",
        description="PANet: cosine x 20 to the class prototype (nearest prototype if several)",
    )
