"""``backbone.pretrained``: weights named by the ecosystem's hubs, found in their caches as timm and
torchvision find them.

- timm's weights come from the Hugging Face Hub (``timm/MODEL.TAG``, file ``model.safetensors``) and
  live in its cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``
  (``XDG_CACHE_HOME`` defaulting to ``~/.cache``);
- torchvision's come from download.pytorch.org and live in the torch hub cache:
  ``TORCH_HOME/hub/checkpoints``, else ``$XDG_CACHE_HOME/torch/hub/checkpoints``.

``HF_HUB_OFFLINE=1`` turns downloads off for both: a file not in its cache is then an error naming
the file, where to get it and the folder to put it in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotkit import FewshotkitError
from fewshotkit.core.userinput import did_you_mean

#: torchvision's COCO-trained DeepLabv3 bodies (the weights SSL-ALPNet, Q-Net, RPT and GMRD start from)
COCO = {"resnet101": "DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1",
        "resnet50": "DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1"}


def offline() -> bool:
    """Whether downloads are off (``HF_HUB_OFFLINE`` set to 1/true/yes/on)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hf_cache() -> Path:
    """The Hugging Face Hub cache folder, from the environment as it is now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "huggingface" / "hub"


def torch_checkpoints() -> Path:
    """The torch hub's checkpoint folder (``TORCH_HOME/hub/checkpoints``)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class HubWeights:
    """A weights file named by a hub: where it comes from and where its cache keeps it."""

    name: str  # what backbone.pretrained said: imagenet, coco, a timm tag, a torchvision enum
    hub: str  # "huggingface" (the Hub, as timm loads) or "torch-hub" (a URL, as torchvision loads)
    ident: str  # huggingface: the repository (timm/resnet101.a1h_in1k); torch-hub: the weights enum or timm tag
    filename: str
    url: str

    @property
    def source(self) -> str:
        return f"{self.hub}:{self.ident}"

    def folder(self) -> Path:
        """The folder the hub's cache keeps the file in (huggingface: the repository's cache folder)."""
        if self.hub == "huggingface":
            return hf_cache() / f"models--{self.ident.replace('/', '--')}"
        return torch_checkpoints()

    def cached(self) -> Path | None:
        """The file in the cache, or None."""
        if self.hub == "huggingface":
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(self.ident, self.filename, cache_dir=hf_cache())
            return Path(found) if isinstance(found, str) else None
        path = self.folder() / self.filename
        return path if path.is_file() else None

    def fetch(self, option: str = "backbone.pretrained") -> Path:
        """The file: from the cache, else downloaded into it (unless downloads are off)."""
        found = self.cached()
        if found is not None:
            return found
        if offline():
            raise FewshotkitError(f"{option}={self.name}: {self.missing('downloads are off (HF_HUB_OFFLINE=1)')}")
        try:
            if self.hub == "huggingface":
                from huggingface_hub import hf_hub_download

                return Path(hf_hub_download(self.ident, self.filename, cache_dir=hf_cache()))
            import torch

            path = self.folder() / self.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(self.url, str(path), progress=False)
            return path
        except Exception as exc:
            reason = f"it cannot be downloaded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            raise FewshotkitError(f"{option}={self.name}: {self.missing(reason)}") from None

    def missing(self, reason: str) -> str:
        """What to do when the file is not in the cache: the file, where to get it, the folder to put it in."""
        if self.hub == "huggingface":
            where = (f"on a connected machine run `hf download {self.ident} {self.filename}` and copy the folder "
                     f"{self.folder().name} of its Hugging Face cache into {self.folder().parent}")
        else:
            where = f"download {self.url} and put it in {self.folder()}"
        cache = "Hugging Face" if self.hub == "huggingface" else "torch hub"
        return (f"{self.filename} ({self.source}) is not in the {cache} cache and {reason}: {where} "
                "(or pass any local copy as backbone.weights=PATH)")


def resolve(model: str, name: str) -> HubWeights:
    """The weights ``backbone.pretrained=name`` means for the timm model ``model``.

    ``imagenet``: timm's default weights of the model; ``coco``: torchvision's COCO DeepLabv3 body
    (resnet50, resnet101); a timm tag (``tv_in1k`` or ``resnet101.tv_in1k``); a torchvision weights
    enum (``ResNet101_Weights.IMAGENET1K_V1``).
    """
    if name == "coco":
        if model not in COCO:
            raise FewshotkitError(f"backbone.pretrained=coco: COCO weights exist for {', '.join(COCO)} bodies, "
                                  f"not '{model}'; use imagenet or a timm tag (fewshotkit weights)")
        return _torchvision(COCO[model], name)
    if "_Weights." in name:
        return _torchvision(name, name)
    import timm
    from timm.models import get_pretrained_cfg

    tags = timm.list_pretrained(f"{model}.*")
    if name == "imagenet":
        cfg = get_pretrained_cfg(model)
        full = f"{model}.{cfg.tag}" if cfg is not None and cfg.tag else ""
    else:
        full = name if name.startswith(f"{model}.") else f"{model}.{name}"
    if full not in tags:
        choices = [t.split(".", 1)[1] for t in tags]
        raise FewshotkitError(
            f"backbone.pretrained: timm has no weights '{name}' for '{model}'.{did_you_mean(name, choices, n=3)} "
            f"It has: {', '.join(['imagenet', *(['coco'] if model in COCO else []), *choices]) or 'none'}")
    cfg = get_pretrained_cfg(full)
    if cfg is not None and cfg.hf_hub_id:
        filename = cfg.hf_hub_filename or "model.safetensors"
        return HubWeights(name, "huggingface", cfg.hf_hub_id, filename,
                          f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{filename}")
    if cfg is None or not cfg.url:
        raise FewshotkitError(f"backbone.pretrained: timm lists '{full}' but gives no place to get it from")
    return HubWeights(name, "torch-hub", full, cfg.url.rsplit("/", 1)[1], cfg.url)  # as timm loads a URL


def _torchvision(enum: str, name: str) -> HubWeights:
    from torchvision.models import get_weight

    try:
        weights = get_weight(enum)
    except (ValueError, KeyError, AttributeError) as exc:
        raise FewshotkitError(f"backbone.pretrained: torchvision has no weights '{enum}' ({exc})") from None
    return HubWeights(name, "torch-hub", f"torchvision {enum}", weights.url.rsplit("/", 1)[1], weights.url)


def choices(model: str) -> list[str]:
    """Every ``backbone.pretrained`` value for the timm model ``model`` (the generic names first)."""
    import timm

    tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{model}.*")]
    return [*(["imagenet"] if tags else []), *(["coco"] if model in COCO else []), *tags]


def listing(model: str) -> list[dict[str, Any]]:
    """``fewshotkit weights`` rows for the timm model ``model``: each pretrained value, its source and
    file, the cache folder it lives in and its cached path (None when it is not cached)."""
    rows = []
    for name in choices(model):
        hub = resolve(model, name)
        found = hub.cached()
        rows.append({"model": model, "pretrained": name, "source": hub.source, "file": hub.filename,
                     "folder": str(hub.folder()), "cached": None if found is None else str(found)})
    return rows
