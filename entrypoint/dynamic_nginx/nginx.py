"""The nginx edge: test the configuration, signal a reload, confirm it took.

`nginx -s reload` returns success even when the master then rejects the new
configuration, so we test first and then watch for a new generation of
worker processes as the proof that the master accepted it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .command import DEFAULT_COMMAND, parse

# nginx prefixes messages with "pid#tid: " once its log is open; dropped, so
# the same error reads the same at every try and is reported once.
_ERROR_RE = re.compile(r"\[(emerg|alert|crit|error)\]\s*(?:[0-9]+#[0-9]+:\s*)?(.*)")


@dataclasses.dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str


# A zone that cannot hold its upstream's servers: nginx names no file or line
# for it, so without this it reads as an internal failure.
_ZONE_FULL_RE = re.compile(r'ngx_slab_alloc\(\) failed: no memory in upstream zone "([^"]+)"')


def resource_limit(message: str) -> str:
    """nginx's message said once more, naming the limit and the fix, if it is about a
    resource limit we know; the message unchanged otherwise."""
    found = _ZONE_FULL_RE.search(message)
    if found:
        return (
            f"upstream {found.group(1)}: its shared-memory zone is too small for its servers "
            f'(limit: the size after "zone {found.group(1)}"; nginx: {message}); '
            "give it a larger size in the template that writes that zone (the built-in "
            "template sizes it from the servers: upstream.zone_size)"
        )
    return message


def first_error(output: str) -> str:
    """nginx's own error message from `nginx -t` output, on one line."""
    found = [m for m in map(_ERROR_RE.search, output.splitlines()) if m]
    # "[alert] could not open error log" may come first; the [emerg] is the cause.
    found.sort(key=lambda m: m.group(1) != "emerg")
    if found:
        return resource_limit(f"[{found[0].group(1)}] {found[0].group(2).strip()}")
    return " ".join(output.split())[-400:] or "nginx -t failed without a message"


def children(pid: int, proc: Path = Path("/proc")) -> set[int]:
    """Process ids whose parent is pid (nginx workers and cache processes)."""
    found = set()
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.add(int(stat.parent.name))
    return found


MASTER_TITLE = b"nginx: master process"


def find_master(proc: Path = Path("/proc")) -> int | None:
    """The pid of the process titled `nginx: master process ...` (nginx sets that
    title itself); None if there is none."""
    for cmdline in sorted(proc.glob("[0-9]*/cmdline")):
        try:
            if cmdline.read_bytes().startswith(MASTER_TITLE):
                return int(cmdline.parent.name)
        except (OSError, ValueError):
            continue
    return None


def retire(pids: Iterable[int]) -> None:
    """Graceful shutdown (QUIT) of these worker processes; those already gone are skipped."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            continue


class Nginx:
    """Runs `nginx -t` with the container's own options and reloads the running master."""

    def __init__(self, command: Sequence[str], pid_file: Path, retire_early: bool = False):
        self.command = parse(command or DEFAULT_COMMAND)
        self.binary = self.command.binary
        self.options = self.command.config_options
        self.pid_file = pid_file
        self.retire_early = retire_early

    def test(self) -> TestResult:
        result = subprocess.run(
            [self.binary, *self.options, "-t", "-q"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        output = (result.stderr + result.stdout).strip()
        if result.returncode == 0:
            return TestResult(True, output)
        return TestResult(False, first_error(output))

    def master_pid(self) -> int | None:
        """From the pid file; if a configuration of the user's moved it (`pid` in
        nginx.conf), from the master's process title."""
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return find_master()

    def reload(self, timeout: float = 10.0) -> bool:
        """HUP the master and wait for a new worker generation; False if none appeared.

        With retire_early, the old generation is then told to shut down
        gracefully (QUIT, as the master itself will) at once. The master waits
        a fixed delay before it does, and until then the old workers keep serving
        their keep-alive clients with the old upstreams: a new replica's first
        request would wait for it. The listening sockets stay open in the new
        workers, so a connection arriving meanwhile waits in the backlog.
        """
        pid = self.master_pid()
        if pid is None:
            return False
        before = children(pid)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if children(pid) - before:
                if self.retire_early:
                    retire(before)
                return True
            time.sleep(0.002)  # a new generation appears within ~10 ms; every ms counts for a new replica
        return False
