"""The hooks a fewshotkit plugin can implement.

Every ``register_*`` hook receives a ``register`` callback, so a plugin never imports host
internals. Hooks run once, when the plugin host starts, to fill the component registries.

A component factory is either a callable or a lazy ``"module:attribute"`` string; the string
form keeps heavy imports (torch, timm) out of start-up until the component is built::

    @fewshotkit.hookimpl
    def register_poolers(register):
        register("median", "my_plugin.pooler:MedianPooler", description="median prototypes")

The full callback is ``register(name, factory, description="", *, aliases=())``: ``aliases`` are
other names of the same kind that resolve to the component (``aliases=["med"]``), e.g. to keep an
old name working after a rename. A name or alias another plugin already registered is a conflict.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("fewshotkit")
hookimpl = pluggy.HookimplMarker("fewshotkit")


@hookspec
def register_backbones(register):
    """Register backbones: ``register(name, factory, description="", *, aliases=())``.

    The factory's keyword arguments are the backbone's options and it returns a
    :class:`fewshotkit.interfaces.backbone.Backbone`.
    """


@hookspec
def register_pseudolabelers(register):
    """Register pseudolabelers: ``register(name, factory, description="", *, aliases=())``.

    The factory returns a :class:`fewshotkit.interfaces.pseudolabeler.PseudoLabeler`.
    """


@hookspec
def register_poolers(register):
    """Register prototype poolers: ``register(name, factory, description="", *, aliases=())``.

    The factory returns a :class:`fewshotkit.interfaces.pooler.PrototypePooler`.
    """


@hookspec
def register_classifiers(register):
    """Register classifiers: ``register(name, factory, description="", *, aliases=())``.

    The factory returns a :class:`fewshotkit.interfaces.classifier.Classifier`.
    """


@hookspec
def register_methods(register):
    """Register whole few-shot methods: ``register(name, factory, description="", *, aliases=())``.

    The factory returns a :class:`fewshotkit.interfaces.method.Method`; a composed method's
    factory receives already-built ``backbone``, ``pooler`` and ``classifier`` parts. The core's
    ``composed`` method already composes any registered parts: a new pooler or classifier needs no
    method of its own; register one for a different forward pass or loss.
    """


@hookspec
def register_postprocessors(register):
    """Register post-processors: ``register(name, factory, description="", *, aliases=())``.

    The factory returns a :class:`fewshotkit.interfaces.postprocessor.Postprocessor`: one
    query scan's binary prediction (Z, H, W) -> the cleaned prediction (Z, H, W).
    """


@hookspec
def register_commands(cli):
    """Add commands to the CLI: ``cli`` is the root :class:`click.Group`."""
