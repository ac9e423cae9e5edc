"""The components fewshotkit itself provides: the generic ``composed`` method.

Its aliases ``alpnet``, ``panet``, ``adnet``, ``qnet`` and ``regional`` are the names under which
the alp, panet and threshold plugins each registered this same factory before: the presets and
saved specs and runs use them, and they build exactly the same model.

The core registers them through the same hooks as any plugin: the plugin host registers this
module with its pluggy manager under the reserved name ``fewshotkit`` (:data:`CORE`) before it
loads any plugin, and fills the registries from it first. So the core's components get the same
checks, listings (``fewshotkit plugins`` shows a ``core`` row, ``fewshotkit components`` names
plugin ``fewshotkit``) and conflict reports as a plugin's, while the core still never imports a
plugin, nor a plugin the host. A direct ``registry.add`` in the host would have needed its own
path for each of those. What differs: the core cannot be disabled, a plugin may not be named
``fewshotkit``, and the core is left out of a method's plugin fingerprints (fewshotkit's own code
is not part of the bench cache keys; see :func:`fewshotkit.method.provenance.plugin_fingerprints`).

Factories are lazy ``"module:attr"`` strings, so this module imports nothing heavy.
"""

from __future__ import annotations

from fewshotkit.host.hookspecs import hookimpl

#: the plugin name the core's components are registered under (reserved: no plugin may use it)
CORE = "fewshotkit"


@hookimpl
def register_methods(register):
    register(
        "composed",
        "fewshotkit.method.composed:ComposedPrototypeMethod",
        description="any backbone + pooler + classifier: weighted CE + PANet alignment + the classifier's losses",
        aliases=["alpnet", "panet", "adnet", "qnet", "regional"],
    )
