"""Built-in plugin: threshold-based methods after SSL-ALPNet: ADNet, Q-Net, regional prototypes.

Parts: the ``threshold`` classifier (ADNet's learned scalar threshold), the ``query-threshold``
classifier (Q-Net's threshold predicted from the query, optional test-time prototype refinement)
and the ``regional`` pooler (RPT-style regional prototypes). The methods are the core's
``composed`` method with these parts (its aliases ``adnet``, ``qnet``, ``regional``). See docs/methods.md.
"""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_methods(register):
    register(
        "qnet-dual",
        "fewshotkit_threshold.qnet:QNetMethod",
        description="Q-Net as published: two feature levels fused 0.9 / 0.1, threshold head on the deepest "
                    "pooled features, test-time prototype refinement (7 Adam steps)",
    )
    register(
        "rpt",
        "fewshotkit_threshold.rpt:RPTMethod",
        description="RPT as published: regional prototypes on the finer level, bias-alleviated transformer "
                    "(3 passes), one fused prototype; periphery, prototype and self-query losses",
    )


@hookimpl
def register_poolers(register):
    register(
        "regional",
        "fewshotkit_threshold.regional:RegionalPooler",
        description="RPT-style: foreground split into regions (farthest points + Voronoi), one prototype each",
    )


@hookimpl
def register_classifiers(register):
    register(
        "threshold",
        "fewshotkit_threshold.classifiers:ThresholdClassifier",
        description="ADNet: foreground if 20 cos(f, p_fg) beats a learned threshold T (init -10); T/20 regulariser",
    )
    register(
        "query-threshold",
        "fewshotkit_threshold.classifiers:QueryThresholdClassifier",
        description="Q-Net: threshold predicted from the query's pooled features; optional test-time refinement",
    )
