"""Cross-validation folds over scans (Roy et al. 2020 protocol, as used by SSL-ALPNet)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.data.store.reader import SliceStore


@dataclass(frozen=True)
class Fold:
    """``queries``: test-side query scans; ``support``: the test-side support scan (never a query,
    never in train); ``train``: every other scan (minus the support patient's other scans) but the
    ``validation`` scans held out of them (:func:`hold_out`), on which options are chosen."""

    index: int
    queries: tuple[str, ...]
    support: str
    train: tuple[str, ...]
    validation: tuple[str, ...] = ()
    validation_queries: tuple[str, ...] = ()  # the held-out scans of patients other than the support's


def make_folds(volumes: Sequence[str], n_folds: int = 5, groups: Sequence[str] | None = None) -> list[Fold]:
    """Split scans, in the given order, into ``n_folds`` contiguous blocks.

    Fold k: queries = block k; support = the first scan of block k + 1 (cyclic); train = the
    rest. With ``groups`` (patient ids, one per volume) blocks are made of whole patients, and
    no patient is on both sides. CHAOS (20 scans, 5 folds): queries [4k, 4k + 4), 15 train.
    """
    volumes = list(volumes)
    groups = list(groups) if groups is not None else list(volumes)
    if len(groups) != len(volumes):
        raise FewshotkitError(f"make_folds: {len(volumes)} volumes but {len(groups)} group ids")
    units: dict[str, list[str]] = {}
    for vol, group in zip(volumes, groups):
        units.setdefault(group, []).append(vol)
    names = list(units)
    if n_folds < 2:
        raise FewshotkitError(f"--n-folds must be at least 2, got {n_folds}")
    need = fewest_patients(n_folds)
    if len(names) < need:
        fits = [k for k in range(2, len(names) + 1) if fewest_patients(k) <= len(names)]
        fewer = " or fewer" if len(fits) > 1 else ""  # 3 patients: 3 folds, not 2
        hint = f"give --n-folds {max(fits)}{fewer}, or " if fits else ""
        raise FewshotkitError(
            f"cannot make {n_folds} folds from {len(names)} patient(s): --n-folds {n_folds} needs at least {need} "
            f"patients (a fold's queries, its support's patient and one training patient); {hint}use a store "
            f"with at least {need} patients"
        )
    blocks = [list(b) for b in np.array_split(np.arange(len(names)), n_folds)]
    folds = []
    for k in range(n_folds):
        query_groups = [names[i] for i in blocks[k]]
        support_group = names[blocks[(k + 1) % n_folds][0]]
        excluded = set(query_groups) | {support_group}
        folds.append(Fold(
            index=k,
            queries=tuple(v for g in query_groups for v in units[g]),
            support=units[support_group][0],
            train=tuple(v for g in names if g not in excluded for v in units[g]),
        ))
    return folds


def fewest_patients(n_folds: int) -> int:
    """The fewest patients :func:`make_folds` splits into ``n_folds`` folds: each fold's training scans
    are the patients outside its query block (of at most ceil(n / n_folds) patients) and its
    support's, and must not be empty (2 folds: 4 patients; N >= 3 folds: N)."""
    n = n_folds
    while n - math.ceil(n / n_folds) - 1 < 1:
        n += 1
    return n


#: where a fold's validation patients come from: ``next-fold``, the last training patients of the
#: next fold's query block (every fold its own); ``end``, the end of the training list (the same
#: patients for every fold but the last)
VAL_FROM = ("next-fold", "end")


def hold_out(fold: Fold, scans: int, patients: dict[str, str] | None = None,
             order: Sequence[str] | None = None) -> Fold:
    """``fold`` with at least ``scans`` of its training scans held out as validation scans: whole
    patients (``patients``: scan -> patient id), at least two, taken from the end of ``order`` (the
    training scans in another order; default the training list). The training list keeps its order.

    The first held patient's first scan is the validation support and the other patients' scans
    its queries (:func:`validation_fold`), so a support never segments its own patient's scans, as
    in the test folds. At least one training scan must remain.
    """
    if scans == 0:
        return fold
    if scans < 2:
        raise FewshotkitError(f"--val-scans {scans}: hold out at least 2 scans (one support and one query), or 0")
    patients = patients or {}
    held: list[str] = []
    for scan in reversed(order if order is not None else fold.train):
        seen = {patients.get(s, s) for s in held}
        if len(held) >= scans and len(seen) >= 2 and patients.get(scan, scan) not in seen:
            break
        held.append(scan)
    held.reverse()
    train = tuple(scan for scan in fold.train if scan not in held)
    owners = [patients.get(s, s) for s in held]
    if not train or len(set(owners)) < 2:
        raise FewshotkitError(f"--val-scans {scans}: fold {fold.index}'s {len(fold.train)} training scans cannot "
                              "give two validation patients and keep one for training; hold out fewer scans")
    queries = tuple(s for s, owner in zip(held, owners) if owner != owners[0])
    return replace(fold, train=train, validation=tuple(held), validation_queries=queries)


def validation_fold(fold: Fold) -> Fold:
    """The fold the validation scans form: the first held-out scan is the support, the held-out
    scans of other patients are its queries."""
    if len(fold.validation) < 2:
        raise FewshotkitError(f"fold {fold.index} has no validation scans: train with --val-scans N (N >= 2)")
    return replace(fold, support=fold.validation[0], queries=fold.validation_queries or fold.validation[1:])


def recorded_validation_fold(run: dict, source: object) -> Fold:
    """The validation fold a run recorded (run.json's ``fold_validation``), or a one-line error."""
    scans = tuple(run.get("fold_validation") or ())
    if len(scans) < 2:
        raise FewshotkitError(f"'{source}' was trained without validation scans, so it has none to score; "
                              "train with --val-scans N (N >= 2) or evaluate the test scans")
    recorded = Fold(index=int(run.get("fold", 0)), queries=(), support=scans[0],
                    train=tuple(run.get("fold_train") or ()), validation=scans,
                    validation_queries=tuple(run.get("fold_validation_queries") or ()))
    return validation_fold(recorded)


def store_folds(store: "SliceStore", n_folds: int = 5) -> list[Fold]:
    """Folds over the store's volumes, keeping each patient's volumes together."""
    groups = [str(store.volume_attrs(v).get("patient", v)) for v in store.volumes]
    return make_folds(store.volumes, n_folds, groups)


def get_fold(store: "SliceStore", fold: int, n_folds: int = 5, val_scans: int = 0,
             val_from: str = "next-fold") -> Fold:
    """Fold ``fold`` of the store, with ``val_scans`` validation scans held out of its training scans
    where ``val_from`` (:data:`VAL_FROM`) says."""
    folds = store_folds(store, n_folds)
    if not 0 <= fold < len(folds):
        raise FewshotkitError(
            f"--fold {fold} is out of range: the store has {len(folds)} folds (0-{len(folds) - 1})"
        )
    if not val_scans:
        return folds[fold]
    patients = {v: str(store.volume_attrs(v).get("patient", v)) for v in folds[fold].train}
    return hold_out(folds[fold], val_scans, patients, validation_order(folds, fold, val_from))


def validation_order(folds: Sequence[Fold], fold: int, val_from: str) -> tuple[str, ...]:
    """Fold ``fold``'s training scans in the order :func:`hold_out` takes validation patients from
    its end: ``end``, the training list; ``next-fold``, the scans of fold ``fold + 1``'s query block
    last, the blocks before it in turn (cyclic) ahead of them."""
    if val_from not in VAL_FROM:
        raise FewshotkitError(f"--val-from '{val_from}': choose one of {', '.join(VAL_FROM)}")
    train = folds[fold].train
    if val_from == "end":
        return train
    n = len(folds)
    block = {scan: k for k, f in enumerate(folds) for scan in f.queries}
    return tuple(sorted(train, key=lambda scan: (block[scan] - fold - 2) % n))
