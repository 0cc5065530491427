"""The check before nginx starts: a file we generated never keeps nginx from starting.

Runs after the first render, and whenever supervisord restarts nginx (then
waiting, if a user's file fails, until the files change):

1. `nginx -t`; a generated file it blames gets its last good copy back, or
   is removed if it has none (lastgood), and the test runs again;
2. a failure that remains is the user's: one line says nginx cannot start
   until that file is fixed (the image never edits a user's file);
3. the main configuration must include the folder the generated files go
   to; if it does not, one line says which `include` to add.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import lastgood, rundir
from .nginx import Nginx
from .settings import Settings

STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
MAX_DEPTH = 10
MAX_BYTES = 1 << 20
_COMMENT_RE = re.compile(r"(?m)(^|[\s;{}])#.*$")
_INCLUDE_RE = re.compile(r"(?:^|[\s;{}])include\s+(?:\"([^\"]+)\"|'([^']+)'|([^\s;]+))\s*;")


def includes(text: str) -> list[str]:
    """The arguments of every `include` directive in an nginx configuration text."""
    text = _COMMENT_RE.sub(r"\1", text)
    return [next(g for g in groups if g) for groups in _INCLUDE_RE.findall(text)]


def include_patterns(conf: Path) -> list[str]:
    """Every include pattern reachable from conf, made absolute the way nginx does
    (relative to the main file's folder), following included files that exist."""
    prefix = conf.parent
    patterns: list[str] = []
    seen: set[str] = set()
    todo = [(str(conf), 0)]
    while todo:
        path, depth = todo.pop(0)
        if path in seen or depth > MAX_DEPTH:
            continue
        seen.add(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read(MAX_BYTES)
        except OSError:
            continue
        for pattern in includes(text):
            absolute = pattern if pattern.startswith("/") else str(prefix / pattern)
            patterns.append(absolute)
            todo += [(found, depth + 1) for found in sorted(glob.glob(absolute))]
    return patterns


def is_included(path: Path, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(str(path), pattern) for pattern in patterns)


def hint(message: str) -> str:
    """What to do about an error that only this image's nginx gives ("" if nothing specific)."""
    if 'unknown directive "stream"' in message:
        return f" (Debian's nginx has the stream module as a module: add `load_module {STREAM_MODULE};` at the top)"
    return ""


def _report(log: logging.Logger, message: str) -> None:
    log.error(
        "nginx -t fails because of a file that dynamic-nginx did not generate, "
        "so nginx cannot start until it is fixed: %s%s",
        message,
        hint(message),
    )


def _copies(settings: Settings) -> lastgood.GoodCopies:
    return lastgood.GoodCopies(settings.conf_dir, settings.run_dir / lastgood.STORE, settings.run_dir / rundir.WRITTEN)


def check(settings: Settings, nginx: Nginx, log: logging.Logger) -> bool:
    """Make the generated files pass `nginx -t` and report what is left; True if nginx can start."""
    copies = _copies(settings)
    result = lastgood.test_and_repair(nginx, copies, log)
    if not result.ok:
        _report(log, result.message)
    conf = Path(nginx.command.conf)
    generated = [settings.conf_dir / name for name in copies.current() if name.endswith(".conf")]
    patterns = include_patterns(conf)
    if any(not is_included(path, patterns) for path in generated):
        log.error(
            "%s does not include %s/*.conf, so nginx never reads the generated upstreams: "
            "add `include %s/*.conf;` inside its http { } block (the image's own nginx.conf has it)",
            conf,
            settings.conf_dir,
            settings.conf_dir,
        )
    return result.ok


def fingerprint(folders: Iterable[Path]) -> frozenset[tuple[str, int, int]]:
    """Path, size and mtime of every file under the folders: changes when any file does
    (a file mounted on its own too: an in-place edit moves its mtime)."""
    found = set()
    for folder in folders:
        for path in folder.rglob("*") if folder.is_dir() else ():
            try:
                st = path.stat()
            except OSError:
                continue
            found.add((str(path), st.st_size, st.st_mtime_ns))
    return frozenset(found)


_PID_RE = re.compile(r"\b\d+#\d+: ")


GIVE_UP_AFTER = 30.0  # seconds: long enough to fix a file by hand, short enough for a restart policy to act


class StillInvalid(Exception):
    """nginx -t still failed when the wait's bound ran out; the message is nginx's error."""


def wait_until_valid(
    settings: Settings,
    nginx: Nginx,
    log: logging.Logger,
    stop: threading.Event,
    interval: float = 1.0,
    give_up_after: float = GIVE_UP_AFTER,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Return once `nginx -t` passes (generated files put back as in check()); True then.

    While a file that is not ours fails it, report it once and wait for any
    file under the watched folders to change, so that nginx starts as soon as
    the user fixes it instead of being restarted, and failing, every second.
    False if `stop` is set first. Raises StillInvalid once `give_up_after`
    seconds have passed with the files still failing: a container that
    cannot serve should exit, so that restart policies and alerts see it.
    """
    folders = [*settings.watch_dirs, settings.conf_dir]
    deadline = clock() + give_up_after
    reported = ""
    while True:
        result = lastgood.test_and_repair(nginx, _copies(settings), log)
        if result.ok:
            if reported:
                log.info("nginx -t passes again: starting nginx")
            return True
        message = _PID_RE.sub("", result.message)  # nginx puts its pid in: not a new error
        if message != reported:
            _report(log, result.message)
            reported = message
        before = fingerprint(folders)
        while fingerprint(folders) == before:
            left = deadline - clock()
            if left <= 0:
                raise StillInvalid(result.message)
            if stop.wait(min(interval, left)):
                return False
