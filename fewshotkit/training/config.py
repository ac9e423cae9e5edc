"""Training configuration: the reference recipe (SSL-ALPNet) as defaults, validated from ``spec.training``.

``spec.training`` is a plain dict (TOML table). Every key of :class:`TrainingConfig` may appear
there; the augmentation parameters live in a nested ``aug`` table, and may also be given as flat
dotted keys (``"aug.rotate" = 10``), so both ``--set training.aug.rotate=10`` and a TOML
``[training.aug]`` table work. Unknown keys are errors that name the valid ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from fewshotkit.core.errors import FewshotkitError

REGIMES = ("ssl", "supervised")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


@dataclass
class AugmentConfig:
    """Random transforms of one view (reference parameters; ranges are symmetric unless a pair).

    - ``rotate``: rotation angle U(-rotate, rotate) degrees;
    - ``shift``: translation U(-shift, shift) pixels per axis (at the model's image size);
    - ``shear``: shear angle U(-shear, shear) degrees;
    - ``scale``: isotropic zoom U(scale[0], scale[1]);
    - ``elastic_alpha`` / ``elastic_sigma``: elastic displacement = alpha x Gaussian(sigma)-smoothed
      U(-1, 1) noise, in pixels (alpha 0 turns it off);
    - ``gamma``: gamma exponent U(gamma[0], gamma[1]) on the min-max rescaled intensity;
    - ``zoom_p``: the probability that an episode is cropped, support and query alike, to a square
      window around the support's mask before the per-view transforms: the support zoom of
      evaluation (:mod:`fewshotkit.evaluation.zoom`) seen in training; 0 (default) never;
    - ``zoom_margin``: that window's margin, U(zoom_margin[0], zoom_margin[1]) x the slice's longer
      side on each side of the mask's box;
    - ``enabled``: False feeds the views unchanged (support = query in the SSL regime).
    """

    enabled: bool = True
    rotate: float = 5.0
    shift: float = 5.0
    shear: float = 5.0
    scale: tuple[float, float] = (0.9, 1.2)
    elastic_alpha: float = 10.0
    elastic_sigma: float = 5.0
    gamma: tuple[float, float] = (0.5, 1.5)
    zoom_p: float = 0.0
    zoom_margin: tuple[float, float] = (0.05, 0.25)


@dataclass
class TrainingConfig:
    """How to train: optimiser, schedule, episodes, checkpoints and logging.

    Defaults are the reference recipe: SGD lr 1e-3, momentum 0.9, weight decay 5e-4, one episode
    per step, lr x 0.95 every 1000 steps, 100k steps; the loss is the method's weighted CE +
    alignment terms, each scaled by ``loss_weights`` (default 1). ``optimizer``, ``schedule``,
    ``warmup_steps``, ``betas`` and ``min_lr_ratio`` are described in ``fewshotkit.training.optim``.
    ``eval_every`` > 0 scores the held-out fold every that many steps (the Dice-vs-time curve).
    ``groups`` sets a parameter group's ``lr_scale`` (x ``lr``) and ``weight_decay``
    (``[training.groups.threshold] lr_scale = 10``); components declare the groups they have.
    ``ema`` in (0, 1) keeps an exponential moving average of the weights with that decay per step
    (``fewshotkit.training.ema``): evaluation and inference then use the averaged weights.
    """

    regime: str = "ssl"
    steps: int = 100_000
    batch_size: int = 1
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    lr_step: int = 1000
    lr_gamma: float = 0.95
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "step"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    eval_every: int = 0
    loss_weights: dict[str, float] = field(default_factory=dict)
    min_segment_size: int = 100  # SSL: smallest superpixel (pixels) that may be a support mask
    min_pixels: int = 1  # supervised: smallest class area (pixels) on a support/query slice
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    log_episodes: bool = False
    amp: bool | None = None  # None: on for CUDA, off on the CPU
    ema: float = 0.0  # 0: off
    groups: dict[str, dict[str, float]] = field(default_factory=dict)  # NAME -> lr_scale / weight_decay
    aug: AugmentConfig = field(default_factory=AugmentConfig)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, *, source: str = "spec.training") -> "TrainingConfig":
        """Validate ``data`` (``spec.training``) and fill the defaults; bad keys/values raise."""
        data = dict(data or {})
        aug_data: dict[str, Any] = {}
        nested = data.pop("aug", None)
        if nested is not None:
            if not isinstance(nested, Mapping):
                raise FewshotkitError(f"{source}.aug must be a table of augmentation options, got {nested!r}")
            aug_data.update(nested)
        for key in [k for k in data if k.startswith("aug.")]:
            aug_data[key[4:]] = data.pop(key)

        top = {f.name: f for f in dataclasses.fields(cls) if f.name != "aug"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in top:
                _unknown(key, list(top) + ["aug"], source)
            values[key] = _coerce(value, top[key], f"{source}.{key}")
        aug_fields = {f.name: f for f in dataclasses.fields(AugmentConfig)}
        aug_values: dict[str, Any] = {}
        for key, value in aug_data.items():
            if key not in aug_fields:
                _unknown(key, list(aug_fields), f"{source}.aug")
            aug_values[key] = _coerce(value, aug_fields[key], f"{source}.aug.{key}")
        config = cls(**values, aug=AugmentConfig(**aug_values))
        config.check(source)
        return config

    def check(self, source: str = "spec.training") -> None:
        """Raise a :class:`FewshotkitError` for values outside their valid range."""
        if self.regime not in REGIMES:
            raise FewshotkitError(f"{source}.regime must be one of {', '.join(REGIMES)}, got '{self.regime}'")
        for name, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES)):
            if getattr(self, name) not in valid:
                raise FewshotkitError(f"{source}.{name} must be one of {', '.join(valid)}, got '{getattr(self, name)}'")
        for name in ("warmup_steps", "eval_every", "weight_decay", "momentum", "min_segment_size", "min_pixels"):
            if getattr(self, name) < 0:
                raise FewshotkitError(f"{source}.{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum <= 0:
            raise FewshotkitError(f"{source}.nesterov needs momentum > 0 (got momentum {self.momentum}); "
                                  "set training.momentum (e.g. 0.9) or training.nesterov=false")
        if not 0 <= self.min_lr_ratio <= 1 or not all(0 <= b < 1 for b in self.betas):
            raise FewshotkitError(f"{source}: min_lr_ratio must lie in [0, 1] and betas in [0, 1) "
                                  f"(got {self.min_lr_ratio}, {list(self.betas)})")
        positive = ("batch_size", "lr_step", "checkpoint_every", "keep_checkpoints", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise FewshotkitError(f"{source}.{name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 0:
            raise FewshotkitError(f"{source}.steps must be >= 0, got {self.steps}")
        if self.lr <= 0 or not 0 < self.lr_gamma <= 1:
            raise FewshotkitError(f"{source}: lr must be > 0 and lr_gamma in (0, 1] (got {self.lr}, {self.lr_gamma})")
        for name, lo_hi in (("scale", self.aug.scale), ("gamma", self.aug.gamma)):
            if not (0 < lo_hi[0] <= lo_hi[1]):
                raise FewshotkitError(f"{source}.aug.{name} must be a pair 0 < low <= high, got {list(lo_hi)}")
        if not 0 <= self.ema < 1:
            raise FewshotkitError(f"{source}.ema must be a decay in [0, 1) (0 turns it off; e.g. 0.999), got {self.ema}")
        for name, settings in self.groups.items():
            if not settings.get("lr_scale", 1.0) > 0 or not settings.get("weight_decay", 0.0) >= 0:
                raise FewshotkitError(f"{source}.groups.{name}: lr_scale must be > 0 and weight_decay >= 0, "
                                      f"got {settings}")
        if self.aug.elastic_sigma <= 0:
            raise FewshotkitError(f"{source}.aug.elastic_sigma must be > 0, got {self.aug.elastic_sigma}")
        if not 0 <= self.aug.zoom_p <= 1:
            raise FewshotkitError(f"{source}.aug.zoom_p must be a probability in [0, 1], got {self.aug.zoom_p}")
        if not 0 <= self.aug.zoom_margin[0] <= self.aug.zoom_margin[1]:
            raise FewshotkitError(f"{source}.aug.zoom_margin must be a pair 0 <= low <= high, "
                                  f"got {list(self.aug.zoom_margin)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML/JSON-ready; ``amp`` None is left out)."""
        out = dataclasses.asdict(self)
        out["aug"]["scale"] = list(self.aug.scale)
        out["aug"]["gamma"] = list(self.aug.gamma)
        out["aug"]["zoom_margin"] = list(self.aug.zoom_margin)
        if not out["aug"]["zoom_p"]:  # off: left out, as ema is (a margin set anyway is kept: exact round trip)
            del out["aug"]["zoom_p"]
            if self.aug.zoom_margin == AugmentConfig().zoom_margin:
                del out["aug"]["zoom_margin"]
        out["betas"] = list(self.betas)
        if out["amp"] is None:
            del out["amp"]
        if not out["ema"]:  # off: left out, so records of runs without it stay as they were
            del out["ema"]
        if not out["groups"]:
            del out["groups"]
        return out


def _unknown(key: str, valid: list[str], source: str) -> None:
    from fewshotkit.core.userinput import did_you_mean

    raise FewshotkitError(f"unknown key '{key}' in {source}.{did_you_mean(key, valid)} Valid keys: {', '.join(sorted(valid))}")


def _group_settings(value: Any, where: str) -> dict[str, float]:
    """One ``training.groups.NAME`` table: ``lr_scale`` and/or ``weight_decay`` (floats)."""
    if not isinstance(value, Mapping):
        raise FewshotkitError(f"{where} must be a table with lr_scale and/or weight_decay, got {value!r}")
    unknown = sorted(set(value) - {"lr_scale", "weight_decay"})
    if unknown:
        raise FewshotkitError(f"unknown key '{unknown[0]}' in {where}; valid keys: lr_scale, weight_decay")
    return {str(k): float(v) for k, v in value.items()}


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    """Check/convert ``value`` to the field's type (TOML gives ints for floats, lists for pairs)."""
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "bool | None":
        if value is None:
            return None
        kind = "bool"
    try:
        if kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise TypeError
            return value
        if kind == "tuple[float, float]":
            pair = tuple(float(v) for v in value)
            if len(pair) != 2:
                raise TypeError
            return pair
        if kind == "dict[str, float]":
            return {str(k): float(v) for k, v in dict(value).items()}
        if kind == "dict[str, dict[str, float]]":
            return {str(name): _group_settings(settings, f"{where}.{name}") for name, settings in dict(value).items()}
    except (TypeError, ValueError):
        raise FewshotkitError(f"{where} must be of type {kind}, got {value!r}") from None
    raise AssertionError(f"unhandled config type {kind}")
