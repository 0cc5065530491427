"""Old worker generations: the workers a reload left serving their connections.

After a reload, nginx's old workers finish the requests they hold, however
long: a long poll, an SSE stream or a WebSocket keeps its worker alive, and
with it the memory of the configuration it was started with. The image sets
no `worker_shutdown_timeout` of its own (that cut such connections at every
membership change); instead this keeper bounds how many old generations may
live at once: when more than `limit` still serve connections, the oldest is
ended (SIGTERM: nginx's fast exit, which closes its connections), with one
line that says which, how many workers and how much memory it held, and why.
Each time the set of old generations grows it says how many there are and
how much memory they hold.

Workers are grouped into generations by their start time: the master forks a
generation's workers together, and two generations are always at least two
configuration parses (`nginx -t`, then the master's own) apart. /proc is
read, never written; a worker that runs as another user (nginx) hides its
file descriptors and smaps from root without CAP_SYS_PTRACE, so memory is
its resident set (VmRSS, shared pages included: an upper bound).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

WORKER_TITLE = b"nginx: worker process"
DRAINING_TITLE = b"nginx: worker process is shutting down"
SAME_GENERATION_TICKS = 1  # a generation's workers start within one clock tick of each other
CHECK_SECONDS = 1.0
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass(frozen=True)
class Worker:
    pid: int
    started: int  # clock ticks after boot (/proc/PID/stat field 22)
    rss_kib: int
    draining: bool  # titled "is shutting down": a reload retired it


@dataclasses.dataclass(frozen=True)
class Generation:
    started: int  # the start time of its first worker, which names it
    workers: tuple[Worker, ...]

    @property
    def rss_kib(self) -> int:
        return sum(w.rss_kib for w in self.workers)

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(w.pid for w in self.workers)


def read_worker(pid: int, proc: Path = Path("/proc")) -> Worker | None:
    """The worker with this pid, or None if it is gone or is no nginx worker."""
    base = proc / str(pid)
    try:
        title = (base / "cmdline").read_bytes().rstrip(b"\0 ")
        stat = (base / "stat").read_text()
        status = (base / "status").read_text()
    except OSError:
        return None
    if not title.startswith(WORKER_TITLE):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # fields from the 3rd (state) on
    rss = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), "0")
    return Worker(pid, int(fields[19]), int(rss), title.startswith(DRAINING_TITLE))


def read_workers(pids: Iterable[int], proc: Path = Path("/proc")) -> list[Worker]:
    return [w for w in (read_worker(pid, proc) for pid in pids) if w is not None]


def old_generations(workers: Iterable[Worker]) -> list[Generation]:
    """Draining workers grouped into generations, oldest first."""
    groups: list[list[Worker]] = []
    for worker in sorted((w for w in workers if w.draining), key=lambda w: (w.started, w.pid)):
        if groups and worker.started - groups[-1][-1].started <= SAME_GENERATION_TICKS:
            groups[-1].append(worker)
        else:
            groups.append([worker])
    return [Generation(group[0].started, tuple(group)) for group in groups]


def to_end(generations: Sequence[Generation], limit: int, seen: Iterable[int] = ()) -> list[Generation]:
    """The oldest generations beyond `limit`, among those already `seen` draining at
    an earlier check (by start time): nginx's master marks retired workers as
    exiting only a while after a reload, and a worker it has not marked yet would be
    started again if it were ended."""
    known = set(seen)
    extra = len(generations) - limit
    return [g for g in generations[: max(extra, 0)] if g.started in known]


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def summary(generations: Sequence[Generation]) -> str:
    workers = sum(len(g.workers) for g in generations)
    memory = sum(g.rss_kib for g in generations)
    return (
        f"{len(generations)} old worker generation{'s' if len(generations) != 1 else ''} "
        f"still serving connections ({workers} worker{'s' if workers != 1 else ''}, {mib(memory)} resident)"
    )


class Keeper:
    """Checks the old generations every CHECK_SECONDS: reports them, ends the oldest beyond the limit."""

    def __init__(
        self,
        limit: int,
        master: Callable[[], int | None],
        log: logging.Logger,
        children: Callable[[int], Iterable[int]],
        proc: Path = Path("/proc"),
        uptime: Callable[[], float] | None = None,
    ):
        self.limit = limit
        self.master = master
        self.log = log
        self.children = children
        self.proc = proc
        self.uptime = uptime or self._uptime
        self._seen: set[int] = set()
        self.ended = 0

    def _uptime(self) -> float:
        try:
            return float((self.proc / "uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0

    def age(self, generation: Generation) -> float:
        return max(self.uptime() - generation.started / TICKS_PER_SECOND, 0.0)

    def check(self) -> list[Generation]:
        """One pass; the generations left serving afterwards."""
        pid = self.master()
        if pid is None:
            return []
        generations = old_generations(read_workers(self.children(pid), self.proc))
        ended = to_end(generations, self.limit, self._seen)
        for generation in ended:
            self.end(generation, len(generations))
        left = [g for g in generations if g not in ended]
        now = {g.started for g in left}
        if now - self._seen:
            self.log.info("%s", summary(left))
        elif now != self._seen:
            self.log.debug("%s", summary(left))
        self._seen = now
        return left

    def end(self, generation: Generation, count: int) -> None:
        for pid in generation.pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        self.ended += 1
        workers = len(generation.workers)
        self.log.warning(
            "ended the oldest worker generation (started %.0f s ago; %d worker%s, pid %s, %s resident) "
            "and the connections it still served, since %d old generations were live and "
            "DYNAMIC_NGINX_MAX_OLD_GENERATIONS=%d: each reload that leaves long-lived connections "
            "behind keeps one",
            self.age(generation),
            workers,
            "s" if workers != 1 else "",
            " ".join(map(str, generation.pids)),
            mib(generation.rss_kib),
            count,
            self.limit,
        )

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(CHECK_SECONDS):
            try:
                self.check()
            except Exception:  # a /proc oddity must never stop the reloader's process
                self.log.exception("checking old worker generations failed")
