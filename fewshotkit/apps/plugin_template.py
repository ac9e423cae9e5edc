"""``fewshotkit plugins new KIND NAME``: a pip-installable plugin package that works as written.

The package holds a ``pyproject.toml`` with the ``fewshotkit`` entry point, the component class
(a small working implementation, its docstrings those of the interface it implements), a hook
that registers it, and a test that runs fewshotkit's contract tests over it
(:mod:`fewshotkit.host.conformance`). Layout for ``plugins new pooler max-pool``::

    fewshotkit-max-pool/
        pyproject.toml
        README.md
        fewshotkit_max_pool/__init__.py     the hook: registers pooler 'max-pool'
        fewshotkit_max_pool/component.py    class MaxPoolPooler(PrototypePooler)
        tests/test_fewshotkit_max_pool.py
"""

from __future__ import annotations

import inspect
import re
import shutil
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from fewshotkit.core.errors import FewshotkitError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class KindTemplate:
    """What a plugin of one kind needs: its interface, hook, class suffix and a working body."""

    interface: str  # "module:Class"
    method: str  # the abstract method the body implements
    hook: str
    suffix: str
    imports: str
    body: str  # the class body after the docstring, indented 4 spaces


TEMPLATES: dict[str, KindTemplate] = {
    "backbone": KindTemplate(
        "fewshotkit.interfaces.backbone:Backbone", "forward", "register_backbones", "Backbone",
        "import torch\nfrom torch import nn\n",
        '''
    def __init__(self, width: int = 16, out_channels: int = 32):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = 1, out_channels, 4
        self.layers = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, out_channels, 3, stride=2, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        {doc}
        return self.layers(images)
'''),
    "pooler": KindTemplate(
        "fewshotkit.interfaces.pooler:PrototypePooler", "forward", "register_poolers", "Pooler",
        "import torch\nimport torch.nn.functional as F\n",
        '''
    def forward(self, features: torch.Tensor, masks: torch.Tensor) -> list[torch.Tensor]:
        {doc}
        # one masked-average prototype per class; an empty mask gives a zero prototype
        masks = F.interpolate(masks, size=features.shape[-2:], mode="bilinear", align_corners=False)
        sums = torch.einsum("schw,snhw->nc", features, masks)
        weights = masks.sum(dim=(0, 2, 3))[:, None] + 1e-5
        return list((sums / weights)[:, None])
'''),
    "classifier": KindTemplate(
        "fewshotkit.interfaces.classifier:Classifier", "forward", "register_classifiers", "Classifier",
        "import torch\nimport torch.nn.functional as F\n",
        '''
    def __init__(self, scale: float = 20.0):
        super().__init__()
        self.scale = scale

    def forward(self, features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
        {doc}
        # each class scores its most similar prototype (cosine similarity, scaled)
        features = F.normalize(features, dim=1)
        scores = [torch.einsum("qchw,pc->qphw", features, F.normalize(p, dim=1)).amax(dim=1) for p in prototypes]
        return self.scale * torch.stack(scores, dim=1)
'''),
    "pseudolabeler": KindTemplate(
        "fewshotkit.interfaces.pseudolabeler:PseudoLabeler", "__call__", "register_pseudolabelers", "PseudoLabeler",
        "import numpy as np\n",
        '''
    ndim = 2

    def __init__(self, size: int = 16):
        self.size = size

    def __call__(self, image: np.ndarray, spacing: tuple[float, ...] | None = None) -> np.ndarray:
        {doc}
        # square patches of `size` pixels, numbered 1..K row by row
        rows, cols = np.indices(image.shape)
        patches = (rows // self.size) * (image.shape[1] // self.size + 1) + cols // self.size
        _, ids = np.unique(patches, return_inverse=True)  # renumber without gaps
        return (ids.reshape(image.shape) + 1).astype(np.int32)
'''),
    "postprocessor": KindTemplate(
        "fewshotkit.interfaces.postprocessor:Postprocessor", "__call__", "register_postprocessors", "Postprocessor",
        "import numpy as np\nfrom scipy import ndimage\n",
        '''
    def __call__(self, mask: np.ndarray, spacing: tuple[float, float, float] | None = None) -> np.ndarray:
        {doc}
        # fill the holes of every slice's prediction
        out = mask.astype(bool)  # a copy: the input stays unchanged
        for z in range(out.shape[0]):
            out[z] = ndimage.binary_fill_holes(out[z])
        return out
'''),
}


def check_name(name: str) -> None:
    """Plugin names are lower-case words joined by hyphens, e.g. ``max-pool``."""
    if not NAME_PATTERN.fullmatch(name):
        raise FewshotkitError(f"plugin name '{name}' must be lower-case letters and digits, words joined by "
                              "hyphens, starting with a letter (e.g. max-pool)")


def _interface(kind: str) -> type:
    import importlib

    module, attr = TEMPLATES[kind].interface.split(":")
    return getattr(importlib.import_module(module), attr)


def _docstring(text: str, indent: int) -> str:
    """``text`` as a triple-quoted docstring whose continuation lines are indented ``indent`` spaces."""
    lines = text.strip().replace('"""', "'''").splitlines()
    rest = textwrap.indent("\n".join(lines[1:]), " " * indent) if len(lines) > 1 else ""
    tail = f"\n{rest}\n{' ' * indent}" if rest else ""
    return f'"""{lines[0]}{tail}"""'.replace(" \n", "\n")


def component_source(kind: str, name: str) -> str:
    """The module defining the component class of ``kind``, named after ``name``."""
    template, interface = TEMPLATES[kind], _interface(kind)
    class_name = "".join(part.capitalize() for part in name.split("-")) + template.suffix
    class_doc = (f"The {kind} '{name}'.\n\nThe contract ({interface.__name__}):\n\n"
                 f"{inspect.getdoc(interface) or ''}")
    method_doc = inspect.getdoc(getattr(interface, template.method)) or ""
    body = template.body.replace("{doc}", _docstring(method_doc, 8))
    module, _ = template.interface.split(":")
    return (f'"""The {kind} \'{name}\' of the plugin fewshotkit-{name}."""\n\nfrom __future__ import annotations\n\n'
            f"{template.imports}\nfrom {module} import {interface.__name__}\n\n\n"
            f"class {class_name}({interface.__name__}):\n    {_docstring(class_doc, 4)}\n{body}")


def package_files(kind: str, name: str) -> dict[str, str]:
    """Relative path -> text of every file of the plugin package ``fewshotkit-NAME``."""
    module = "fewshotkit_" + name.replace("-", "_")
    class_name = "".join(part.capitalize() for part in name.split("-")) + TEMPLATES[kind].suffix
    return {
        "pyproject.toml": PYPROJECT.format(name=name, module=module, kind=kind),
        "README.md": README.format(name=name, kind=kind),
        f"{module}/__init__.py": INIT.format(name=name, module=module, kind=kind, hook=TEMPLATES[kind].hook,
                                             class_name=class_name),
        f"{module}/component.py": component_source(kind, name),
        f"tests/test_{module}.py": TEST.format(name=name, kind=kind),
    }


def new_plugin(kind: str, name: str, out: Path) -> Path:
    """Write the package ``OUT/fewshotkit-NAME`` whole or not at all; its folder is returned."""
    if kind not in TEMPLATES:
        raise FewshotkitError(f"no plugin template for kind '{kind}'; kinds: {', '.join(TEMPLATES)}")
    check_name(name)
    target = out / f"fewshotkit-{name}"
    if target.exists():
        raise FewshotkitError(f"'{target}' exists already: choose another NAME or --out folder")
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".fewshotkit-{name}.", dir=out))
    try:
        for relative, text in package_files(kind, name).items():
            path = scratch / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "fewshotkit-{name}"
version = "0.1.0"
description = "fewshotkit plugin: the {kind} '{name}'"
requires-python = ">=3.10"
dependencies = ["fewshotkit"]

[project.optional-dependencies]
test = ["pytest"]

# fewshotkit loads every module of this entry-point group; the entry point's name is the plugin's.
[project.entry-points.fewshotkit]
{name} = "{module}"

[tool.setuptools]
packages = ["{module}"]
"""

INIT = '''"""fewshotkit plugin '{name}': registers the {kind} '{name}'."""

from fewshotkit import hookimpl

__version__ = "0.1.0"


@hookimpl
def {hook}(register):
    # a "module:Class" string: the class (and torch) is imported only when the {kind} is built
    register("{name}", "{module}.component:{class_name}", description="the {kind} '{name}'")
'''

TEST = '''"""The contract tests fewshotkit runs over every {kind}, run over this plugin's '{name}'."""

from fewshotkit.host.conformance import check_component
from fewshotkit.host.plugin_host import PluginHost


def test_the_plugin_loads_through_its_entry_point():
    info = PluginHost().plugins.get("{name}")
    assert info is not None, "plugin '{name}' is not installed: pip install -e ."
    assert info.error is None and "{name}" in info.components.get("{kind}", [])


def test_the_{kind}_honours_its_contract():
    check_component("{kind}", PluginHost().registry.create("{kind}", "{name}"))
'''

README = """# fewshotkit-{name}

A fewshotkit plugin providing the {kind} `{name}`.

```bash
pip install -e ".[test]"        # registers the plugin through its entry point
fewshotkit plugins              # lists '{name}'
fewshotkit components {kind} {name}
python -m pytest                # fewshotkit's contract tests over '{name}'
```
"""
