"""Setting-2 slice filters: drop the training slices that show the excluded (test) classes.

Two rules are in use in the literature (:data:`EXCLUSION_RULES`): ``any`` (SSL-ALPNet's, the
default) drops every slice that shows any excluded class; ``all`` (the rule of Q-Net's, RPT's and
GMRD's code) drops only slices that show every excluded class at once, which keeps far
more slices (on CHAOS-T2 with all four organs excluded: 88 of 718 slices dropped instead of 558).
With one excluded class the two rules are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.data.store.reader import SliceStore

EXCLUSION_RULES = ("any", "all")
EXCLUDE_GROUPS: dict[str, tuple[str, ...]] = {"upper": ("liver", "spleen"), "lower": ("left kidney", "right kidney")}


def resolve_classes(store: "SliceStore", spec: str | Sequence[str | int]) -> list[int]:
    """Class values from "liver,spleen", "upper", "1,4" or a list of names/values (sorted, unique)."""
    items = [p.strip() for p in spec.split(",")] if isinstance(spec, str) else list(spec)
    values: set[int] = set()
    for item in items:
        names: tuple[str | int, ...]
        if isinstance(item, str) and item.lower() in EXCLUDE_GROUPS:
            names = EXCLUDE_GROUPS[item.lower()]
        elif item == "":
            continue
        else:
            names = (item,)
        for name in names:
            try:
                values.add(store.class_value(name))
            except FewshotkitError:
                listing = ", ".join(f"{v}={n}" for v, n in store.classes.items())
                groups = "; ".join(f"{g}=({', '.join(c)})" for g, c in EXCLUDE_GROUPS.items())
                raise FewshotkitError(
                    f"unknown class '{name}' for store '{store.path}'; classes: {listing}; groups: {groups}"
                ) from None
    if not values:
        raise FewshotkitError(f"no classes given in '{spec}'")
    return sorted(values)


def check_rule(rule: str) -> str:
    """``rule`` if it is an exclusion rule, else a one-line error naming ``--exclusion``."""
    if rule not in EXCLUSION_RULES:
        raise FewshotkitError(f"--exclusion must be one of {', '.join(EXCLUSION_RULES)} "
                              f"(any: SSL-ALPNet's rule; all: Q-Net's, RPT's and GMRD's), got '{rule}'")
    return rule


def allowed_slices(store: "SliceStore", volumes: Sequence[str], exclude: Sequence[int] = (),
                   rule: str = "any") -> list[tuple[str, int]]:
    """(volume, z) of ``volumes`` that ``rule`` keeps (from the class index): ``any`` drops the
    slices showing any class in ``exclude``, ``all`` those showing every one of them."""
    check_rule(rule)
    exclude = [store.class_value(c) for c in exclude]
    out: list[tuple[str, int]] = []
    for vol in volumes:
        shown = [set(store.class_slices(cls, vol).tolist()) for cls in exclude]
        banned = set() if not shown else set.union(*shown) if rule == "any" else set.intersection(*shown)
        out.extend((vol, z) for z in range(store.shape(vol)[0]) if z not in banned)
    return out


def class_groups(store: "SliceStore") -> dict[str, list[str]]:
    """Excluded groups for setting 2 / supervised training: the paper's upper / lower groups when
    they cover the store's classes, else one group per class."""
    names = {n.lower(): n for n in store.classes.values()}
    covered = {n for group in EXCLUDE_GROUPS.values() for n in group}
    if set(names) <= covered and all(all(c in names for c in g) for g in EXCLUDE_GROUPS.values()):
        return {group: [names[c] for c in classes] for group, classes in EXCLUDE_GROUPS.items()}
    return {name.replace(" ", "-"): [name] for name in store.classes.values()}
