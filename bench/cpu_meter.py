"""CPU time by role, read from /proc: where a benchmark's two cores went.

:class:`CpuMeter` takes a snapshot of every process's user + system time, and later
tells the difference by role. A process's role is found from its session (the bench starts
each part with ``start_new_session=True``, so a part's session id is its first pid) or its
command name (``postgres`` for the server and its backends); anything else is "other".
Linux only; elsewhere the meter reports nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class _Proc:
    comm: str
    session: int
    ticks: int


def _snapshot() -> dict[int, _Proc]:
    found: dict[int, _Proc] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid pgrp session ... utime stime": comm may hold spaces.
        head, _, rest = raw.rpartition(")")
        fields = rest.split()
        comm = head.partition("(")[2]
        found[int(entry.name)] = _Proc(comm, int(fields[3]), int(fields[11]) + int(fields[12]))
    return found


class CpuMeter:
    """CPU seconds per role between :meth:`start` and :meth:`stop`.

    :param sessions: role of each session id (a part started in a session of its own).
    """

    def __init__(self) -> None:
        self.sessions: dict[int, str] = {}
        self._before: dict[int, _Proc] = {}
        self._after: dict[int, _Proc] = {}

    def start(self) -> None:
        self._before = _snapshot()

    def stop(self) -> None:
        self._after = _snapshot()

    def _role(self, pid: int, proc: _Proc) -> str:
        if pid == os.getpid():
            return "sender"
        if proc.session in self.sessions:
            return self.sessions[proc.session]
        if proc.comm == "postgres":
            return "postgres"
        return "other"

    def seconds(self) -> dict[str, float]:
        """CPU seconds by role, largest first (processes that ended meanwhile are missed)."""
        totals: dict[str, int] = {}
        for pid, proc in self._after.items():
            before = self._before.get(pid)
            spent = proc.ticks - (before.ticks if before and before.comm == proc.comm else 0)
            role = self._role(pid, proc)
            totals[role] = totals.get(role, 0) + spent
        return {
            role: ticks / _TICKS
            for role, ticks in sorted(totals.items(), key=lambda kv: -kv[1])
            if ticks
        }
