"""How a study's cells run: the ``[launcher]`` section of a bench config and the flags over it
(:class:`LaunchOptions`), checked before anything runs; running them is :mod:`fewshotkit.apps.bench.launch`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from typing import Any

from fewshotkit.core.errors import FewshotkitError

LAUNCHERS = ("local", "slurm")
#: the order jobs start in: every method's fold 0 first (a study stopped part way has whole folds to
#: compare), or every fold of the first method first
JOB_ORDERS = ("folds", "methods")
_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d{1,2}))?(?::(\d{1,2}))?$")


def parse_minutes(value: str | int, option: str = "time") -> int:
    """Minutes of a time limit in SLURM's forms: ``90`` or ``"90"`` (minutes), ``"30:00"`` (MM:SS),
    ``"1:30:00"`` (H:MM:SS), ``"2-12"``, ``"2-12:00"`` or ``"2-12:00:00"`` (days-H[:MM[:SS]]);
    seconds round up to a minute. A limit of no time is an error."""
    match = _TIME.match(str(value).strip())
    if match is None:
        raise FewshotkitError(f"launcher option '{option}': '{value}' is not minutes, MM:SS, H:MM:SS or D-H[:MM[:SS]]")
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-H, D-H:MM, D-H:MM:SS
        hours, minutes, seconds = first or 0, second or 0, third or 0
    elif third is not None:  # H:MM:SS
        hours, minutes, seconds = first or 0, second or 0, third
    else:  # M or MM:SS
        hours, minutes, seconds = 0, first or 0, second or 0
    total = (days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    if total < 1:
        raise FewshotkitError(f"launcher option '{option}': '{value}' is no time; give at least one minute")
    return total


@dataclass
class LaunchOptions:
    """How a study's cells run: the ``[launcher]`` section of a bench config, overridden by flags."""

    launcher: str = "local"
    jobs: int | None = None  # jobs at once (local default 1: in this process); slurm: queued at once (default all)
    partition: str | None = None  # slurm
    time: str | int | None = None  # per job: minutes or [D-]H:MM:SS
    gpus: int | None = None  # per job (local: default 1 when CUDA is there and the device is not the CPU)
    cpus: int | None = None  # per job (local: default the cores split between the jobs)
    setup: list[str] | None = None  # slurm: shell lines run before each job (module load, conda activate)
    folder: str | None = None  # the jobs' logs; default OUT/jobs
    order: str = "folds"  # which jobs start first (JOB_ORDERS)

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise FewshotkitError(f"bench --launcher must be one of {', '.join(LAUNCHERS)}, got '{self.launcher}'")
        for name in ("jobs", "gpus", "cpus"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < (1 if name != "gpus" else 0)):
                raise FewshotkitError(f"bench launcher option '{name}' must be a {'non-negative' if name == 'gpus' else 'positive'} "
                                      f"integer, got {value!r}")
        if self.order not in JOB_ORDERS:
            raise FewshotkitError(f"bench --order must be one of {', '.join(JOB_ORDERS)}, got {self.order!r}")
        if self.time is not None:
            parse_minutes(self.time)
        for name in ("partition", "folder"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise FewshotkitError(f"bench launcher option '{name}' must be a string, got {getattr(self, name)!r}")
        if isinstance(self.setup, str):  # one shell line
            self.setup = [self.setup]
        if self.setup is not None and not (isinstance(self.setup, list) and all(isinstance(s, str) for s in self.setup)):
            raise FewshotkitError(f"bench launcher option 'setup' must be a list of shell lines, got {self.setup!r}")

    @classmethod
    def from_sources(cls, section: dict[str, Any] | None, **flags: Any) -> "LaunchOptions":
        """The config file's ``[launcher]`` section with the non-None ``flags`` on top."""
        data = dict(section or {})
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise FewshotkitError(f"bench config [launcher]: unknown key(s) {', '.join(unknown)}; "
                                  f"valid: {', '.join(sorted(valid))}")
        data.update({k: v for k, v in flags.items() if v is not None})
        return cls(**data)

    @property
    def parallel(self) -> bool:
        """Whether cells run as jobs (else in this process, one after another)."""
        return self.launcher != "local" or (self.jobs or 1) > 1

    def threads(self) -> int | None:
        """Torch threads per job: ``cpus``, else (local) this machine's cores split between the jobs, else
        (slurm) None: the cores SLURM gives the job."""
        if self.cpus is not None:
            return self.cpus
        return max(1, available_cores() // (self.jobs or 1)) if self.launcher == "local" else None


def available_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
