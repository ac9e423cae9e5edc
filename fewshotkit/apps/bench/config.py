"""What a ``fewshotkit bench`` run compares: the config, from flags or a TOML file, checked as a
whole before anything runs (the methods' labels, published figures and recipes:
:mod:`fewshotkit.apps.bench.methods`)."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from fewshotkit.apps.bench.methods import RECIPES
from fewshotkit.apps.bench.readings_table import NAME_BREAKERS
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.episodes.folds import VAL_FROM
from fewshotkit.evaluation.options import MODEL_KEYS, PROTOCOL_FIELDS, InferenceOptions
from fewshotkit.evaluation.protocol import ProtocolConfig

#: folds over a store's scans unless ``n_folds`` (``--n-folds``) says otherwise; a store needs at
#: least as many patients as folds
N_FOLDS = 5

#: what a bench scores: the folds' test scans, or the validation scans held out of their training scans
SPLITS = ("test", "validation")
_ADDED = ("overrides", "eval_overrides")  # config keys that command-line flags extend instead of replace


@dataclass
class BenchConfig:
    """A comparison: which methods on which stores, with one shared budget and protocol."""

    stores: list[str]
    methods: list[str]
    out: str
    folds: list[int] = field(default_factory=lambda: [0])  # or "all"
    seed: int = 0
    steps: int | dict[str, int] | None = None  # shared, or per method (a table: method -> steps)
    setting: list[int] = field(default_factory=lambda: [1])  # 1, 2 or [1, 2]: one table per setting
    exclusion: str = "any"  # setting 2's rule: "any" (SSL-ALPNet) or "all" (Q-Net, RPT, GMRD)
    val_scans: int = 0  # training scans held out of every fold's training side (whole patients)
    val_from: str = "next-fold"  # which patients: the next fold's block, or ("end") the training list's end
    split: str = "test"  # score the folds' test scans, or ("validation") their held-out validation scans
    shots: int = 1
    protocol: list[str] = field(default_factory=lambda: ["roy"])  # a name or a list: one column group each
    chunks: int = 3
    chunk_rule: str | None = None  # how a query's range is cut into the chunks (None: even; evaluation.query_range)
    recipe: str | None = None
    overrides: list[str] = field(default_factory=list)
    eval_overrides: list[str] = field(default_factory=list)  # inference options: same models, own cells
    device: str = "auto"
    pseudolabels: list[str] = field(default_factory=list)  # a set or a list: one row per set for SSL methods
    batch_size: int = 16
    figures: bool = False
    n_folds: int = N_FOLDS
    poolers: list[str] = field(default_factory=list)
    launcher: dict[str, Any] = field(default_factory=dict)  # [launcher]: how cells run (bench.launch_options)
    postprocess: list[Any] | str | None = None  # replaces every method's [postprocess] list (evaluation only)
    drop_absent: float | None = None  # replaces every method's drop_absent (evaluation only)
    readings: dict[str, list[str]] = field(default_factory=dict)  # name -> inference options (bench.readings)
    cells: str | None = None  # finished cells kept with the study (read-only), a folder laid out as OUT/cells

    def __post_init__(self) -> None:
        self._normalise()
        if not self.stores:
            raise FewshotkitError("bench: give at least one store (--store or 'stores' in the config file)")
        if not self.methods:
            raise FewshotkitError("bench: give at least one method (--method or 'methods' in the config file)")
        self._check_stores()
        self._check_steps()
        if not self.setting or any(s not in (1, 2) for s in self.setting):
            raise FewshotkitError(f"bench: --setting must be 1 or 2 (repeatable), got {self.setting}")
        self._check_split()
        if self.recipe is not None and self.recipe not in RECIPES:
            raise FewshotkitError(f"bench: unknown --recipe '{self.recipe}'; recipes: {', '.join(RECIPES)}")
        if not isinstance(self.n_folds, int) or self.n_folds < 2:
            raise FewshotkitError(f"bench: --n-folds must be an integer >= 2, got {self.n_folds!r}")
        if self.folds == "all":  # type: ignore[comparison-overlap]  # from --all-folds or folds = "all"
            self.folds = list(range(self.n_folds))
        if any(not isinstance(f, int) or f < 0 or f >= self.n_folds for f in self.folds):
            raise FewshotkitError(f"bench: folds {self.folds} must lie in 0..{self.n_folds - 1} (--n-folds {self.n_folds})")
        if not self.protocol:
            raise FewshotkitError("bench: give at least one --protocol")
        if self.cells is not None and not Path(self.cells).is_dir():
            raise FewshotkitError(f"bench: the study's cells folder '{self.cells}' is not a folder; create it or "
                                  "leave out 'cells'")
        self._check_overrides()
        options = self.inference_options()  # checked here, before anything trains
        for name in self.protocol:
            ProtocolConfig(name, options.chunks, options.shots, options.chunk_rule)
        self._check_readings()

    def _normalise(self) -> None:
        """One value where a list is meant becomes a list of one (``folds = 2``, ``overrides = "k=v"``),
        and repeats are dropped, keeping the first."""
        for name in ("stores", "methods", "setting", "protocol", "pseudolabels", "poolers", "overrides",
                     "eval_overrides", "folds"):
            value = getattr(self, name)
            if value is None:
                value = []
            elif isinstance(value, (str, int)) and not (name == "folds" and value == "all"):
                value = [value]
            if isinstance(value, list):
                value = list(dict.fromkeys(value)) if name not in ("overrides", "eval_overrides") else value
            setattr(self, name, value)

    def _check_stores(self) -> None:
        """Two stores of one file name would share their tables and cells (both are named by it)."""
        seen: dict[str, str] = {}
        for store in self.stores:
            stem = Path(store).stem
            if stem in seen:
                raise FewshotkitError(f"bench: stores '{seen[stem]}' and '{store}' share the name '{stem}', which names "
                                      "their tables and cells; rename one")
            seen[stem] = store

    def _check_split(self) -> None:
        """Setting 2's rule, the split scored and the validation scans held out."""
        from fewshotkit.data.episodes.filters import check_rule

        check_rule(self.exclusion)
        if self.exclusion != "any" and 2 not in self.setting:
            raise FewshotkitError(f"bench: --exclusion {self.exclusion} applies to setting 2 only; add --setting 2 "
                                  "or leave out --exclusion")
        if self.split not in SPLITS:
            raise FewshotkitError(f"bench: --split must be one of {', '.join(SPLITS)}, got '{self.split}'")
        if self.split == "validation" and self.val_scans < 2:
            raise FewshotkitError("bench: --split validation scores the scans held out of each fold's training "
                                  "scans: give --val-scans N (N >= 2)")
        if self.val_from not in VAL_FROM:
            raise FewshotkitError(f"bench: --val-from must be one of {', '.join(VAL_FROM)}, got '{self.val_from}'")
        if self.val_scans < 0 or self.val_scans == 1:
            raise FewshotkitError(f"bench: --val-scans {self.val_scans}: hold out 0, or at least 2 scans "
                                  "(one support and one query)")

    def _check_overrides(self) -> None:
        """``--set`` changes the models and ``--eval-set`` only how they are read: each refuses the other's keys."""
        for item in self.overrides:
            if item.partition("=")[0].strip() in (*MODEL_KEYS, *PROTOCOL_FIELDS):
                raise FewshotkitError(f"bench --set '{item}': an inference option; give it with --eval-set to score "
                                      "the same models (--set would train new ones)")
        for item in self.eval_overrides:
            if item.strip().startswith("training."):
                raise FewshotkitError(f"bench --eval-set '{item}': training options belong in --set (they change "
                                      "the models)")

    def _check_readings(self) -> None:
        """``readings``: a table of names, each a list of inference options (``KEY=VALUE``, as
        ``--eval-set`` takes them), checked as the study's own are; no two alike, none that the
        study's own ``--postprocess`` / ``--drop-absent`` would override, no name that breaks a table."""
        if not isinstance(self.readings, dict):
            raise FewshotkitError("bench: 'readings' must be a table of names, each a list of inference options "
                                  '(e.g. [readings] search = ["support_orientation=search"])')
        seen: dict[tuple[str, ...], str] = {}
        for name, items in self.readings.items():
            listed = [items] if isinstance(items, str) else items
            if not name.strip() or not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
                raise FewshotkitError(f"bench: reading '{name}' must have a name and a list of KEY=VALUE inference "
                                      f"options, got {items!r}")
            if any(part in name for part in NAME_BREAKERS):
                raise FewshotkitError(f"bench: reading '{name}': a name may not hold "
                                      f"{' or '.join(repr(p) for p in NAME_BREAKERS)}; rename it")
            for item in listed:
                self._check_reading_item(name, item)
            same = tuple(sorted(item.replace(" ", "") for item in listed))
            if same in seen:
                raise FewshotkitError(f"bench: readings '{seen[same]}' and '{name}' give the same options; keep one")
            seen[same] = name
            self.readings[name] = list(listed)
            InferenceOptions.from_values(shots=self.shots, chunks=self.chunks, chunk_rule=self.chunk_rule,
                                         batch_size=self.batch_size, postprocess=self.postprocess,
                                         drop_absent=self.drop_absent,
                                         overrides=[*self.eval_overrides, *listed])

    def _check_reading_item(self, name: str, item: str) -> None:
        """One option of reading ``name``: an inference option the study's own options leave to it."""
        key = item.partition("=")[0].strip()
        if key.startswith("training."):
            raise FewshotkitError(f"bench: reading '{name}': '{item}' is a training option; a reading only "
                                  "changes how the trained models are read")
        given = {"postprocess": self.postprocess, "drop_absent": self.drop_absent, "chunk_rule": self.chunk_rule}
        if given.get(key) is not None:
            raise FewshotkitError(f"bench: reading '{name}': '{item}' would be overridden by the study's own "
                                  f"--{key.replace('_', '-')}; leave that out or drop it from the reading")

    def _check_steps(self) -> None:
        """``steps``: None, a count, or a table giving methods of this bench their own count (equal
        training time for methods whose steps cost differently); the others keep their preset's."""
        if isinstance(self.steps, dict):
            self.steps = self._steps_by_method(self.steps)
        table = self.steps if isinstance(self.steps, dict) else {}
        counts = table.items() if table else [("every method", self.steps)]
        for method, count in counts:
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
                raise FewshotkitError(f"bench: steps for {method} must be a whole number >= 0, got {count!r}")
        unknown = [m for m in table if m not in self.methods]
        if unknown:
            raise FewshotkitError(f"bench: the steps table names '{unknown[0]}', which is not one of the bench's "
                                  f"methods ({', '.join(self.methods)})")

    def _steps_by_method(self, table: dict[str, Any]) -> dict[str, Any]:
        """The steps table keyed as :attr:`methods` names its entries: a spec file may be named by
        another path to the same file (beside the study file there, from where bench runs here)."""
        files = {os.path.realpath(m): m for m in self.methods if isinstance(m, str) and m.endswith(".toml")}
        keyed: dict[str, Any] = {}
        for key, count in table.items():
            name = files.get(os.path.realpath(key), key) if isinstance(key, str) and key.endswith(".toml") else key
            if name in keyed:
                raise FewshotkitError(f"bench: the steps table names one spec file twice ('{name}', also as "
                                      f"'{key}'); keep one")
            keyed[name] = count
        return keyed

    def inference_options(self) -> InferenceOptions:
        """The inference options every method is evaluated with: ``shots``, ``chunks``, ``chunk_rule``,
        ``batch_size``, ``postprocess`` and ``drop_absent`` (None: each method's own) and
        ``eval_overrides`` (whose ``postprocess=`` / ``drop_absent=`` are aliases of those keys)."""
        return InferenceOptions.from_values(shots=self.shots, chunks=self.chunks, chunk_rule=self.chunk_rule,
                                            batch_size=self.batch_size, postprocess=self.postprocess,
                                            drop_absent=self.drop_absent,
                                            overrides=self.eval_overrides)

    @classmethod
    def from_toml(cls, path: str | os.PathLike, **flags: Any) -> "BenchConfig":
        """Read a TOML config; non-None ``flags`` override its keys, except ``overrides`` and
        ``eval_overrides``, which are added after the file's. Unknown keys are errors. ``cells`` and
        the file's relative spec files (methods ending ``.toml``) are found beside the file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FewshotkitError(f"bench config '{path}': {exc}") from None
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise FewshotkitError(f"bench config '{path}': unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
        for key in _ADDED:  # --set / --eval-set add to the file's assignments (later ones win)
            if flags.get(key) is not None:
                listed = data.get(key, [])
                flags[key] = [*([listed] if isinstance(listed, str) else listed), *flags[key]]
        # kept beside the study file, wherever bench runs: its cells and its spec files
        if isinstance(data.get("cells"), str):
            data["cells"] = str(path.parent / data["cells"])
        if isinstance(data.get("methods"), (str, list)):
            methods = data["methods"]
            data["methods"] = [_beside(path, m) for m in ([methods] if isinstance(methods, str) else methods)]
        if isinstance(data.get("steps"), dict):
            data["steps"] = {_beside(path, m): n for m, n in data["steps"].items()}
        data.update({k: v for k, v in flags.items() if v is not None})
        data.setdefault("out", "bench_out")
        data.setdefault("stores", [])
        data.setdefault("methods", [])
        try:
            return cls(**data)
        except TypeError as exc:
            raise FewshotkitError(f"bench config '{path}': {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _beside(study: Path, method: Any) -> Any:
    """A relative spec-file ``method`` named in the study file ``study``, as found beside that file."""
    if isinstance(method, str) and method.endswith(".toml") and not Path(method).is_absolute():
        return os.path.join(study.parent, method)  # unnormalised: two names of one file stay two keys
    return method


def inference_keys(values: dict[str, Any]) -> dict[str, Any]:
    """Config keys (None: not given) from the values of the shared inference options on the command
    line (:func:`fewshotkit.cli.options.inference_options`; ``--eval-set`` -> ``eval_overrides``)."""
    keys = {"shots": "shots", "chunks": "chunks", "chunk_rule": "chunk_rule", "batch_size": "batch_size",
            "postprocess": "postprocess", "drop_absent": "drop_absent", "overrides": "eval_overrides"}
    return {key: (list(values[name]) if name in ("overrides", "postprocess") else values[name])
            if name in values else None for name, key in keys.items()}
