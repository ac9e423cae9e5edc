"""Built-in plugin: the methods after SSL-ALPNet: ADNet, Q-Net, RPT, GMRD.

Parts for the core's ``composed`` method (its aliases ``adnet``, ``qnet``, ``regional``): the
``threshold`` classifier (ADNet's learned scalar threshold), the ``query-threshold`` classifier
(Q-Net's threshold predicted from the query) and the ``regional`` pooler (regional prototypes).
Methods as published, reading several feature levels of one backbone: ``qnet-dual`` (Q-Net),
``rpt`` (RPT) and ``gmrd`` (GMRD). See docs/methods.md.
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
    register(
        "gmrd",
        "fewshotkit_threshold.gmrd:GMRDMethod",
        description="GMRD: learned representative descriptors per class (100 fg, 600 bg) + global and edge "
                    "descriptors, matched with the query and fused by learned decoders",
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
