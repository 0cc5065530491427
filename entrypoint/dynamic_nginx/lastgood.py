"""Last good copies of the files we generate, put back when `nginx -t` blames one.

After every `nginx -t` that passes, each generated file in conf.d (first line
= MARKER, and its name in the watcher's record, rundir.WRITTEN) is copied to a
store (`run_dir/good/`), so the store always holds versions nginx accepted (best effort: a store that cannot be written, on a
full disk say, is reported once and never keeps a reload from happening). When `nginx -t` fails and nginx's message names a
generated file, that file gets its good copy back, or is removed if it has
none (it is new since the last good test), and the test runs again. A file
without the marker, or with it under a name the watcher did not write (a
copy that pins a generated file), is the user's: it is never touched, its
error is reported.

Shared by the reloader (every reload) and the start-up check (before nginx
starts), so neither a running proxy nor a restarted one is ever stuck on a
file we wrote.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from . import rundir
from .marker import describe, is_ours, recorded, replace
from .nginx import TestResult

STORE = rundir.GOOD
MAX_REPAIRS = 20
# nginx ends a message about a file with " in /path/to/file:LINE".
_BLAME_RE = re.compile(r" in (/.+):(\d+)$")
_TEMPLATE_RE = re.compile(r" from (\S+); ")


class Tester(Protocol):
    def test(self) -> TestResult: ...


@dataclasses.dataclass(frozen=True)
class Blame:
    """The file and line an nginx error message points at."""

    path: Path
    line: int


def blamed(message: str) -> Blame | None:
    """The file and line at the end of an nginx message, if it names one."""
    found = _BLAME_RE.search(message.strip())
    return Blame(Path(found.group(1)), int(found.group(2))) if found else None


def template_of(data: bytes) -> str:
    """The template a generated file came from, as its header names it; "" if it does not."""
    first = data.split(b"\n", 1)[0].decode(errors="replace")
    found = _TEMPLATE_RE.search(first)
    return found.group(1) if found else ""


class GoodCopies:
    """The generated files of one folder, and their last good copies in a store folder."""

    def __init__(self, folder: Path, store: Path, record: Path | None = None):
        self.folder = folder
        self.store = store
        # The watcher's record of the names it wrote; None: every file with the marker counts.
        self.record = record
        self.store_error = ""  # why the last keep() could not store every copy; "" when it could

    def current(self) -> dict[str, bytes]:
        """Name -> bytes of every generated file in the folder now."""
        found: dict[str, bytes] = {}
        for path in sorted(self.folder.iterdir()) if self.folder.is_dir() else ():
            if path.name.startswith(".") or not path.is_file() or not self._ours(path):
                continue
            try:
                found[path.name] = path.read_bytes()
            except OSError:
                continue
        return found

    def good(self) -> dict[str, bytes]:
        """Name -> bytes of every good copy."""
        if not self.store.is_dir():
            return {}
        return {
            p.name: p.read_bytes() for p in sorted(self.store.iterdir()) if p.is_file() and not p.name.startswith(".")
        }

    def keep(self, before: Mapping[str, bytes], after: Mapping[str, bytes]) -> list[str]:
        """Record a passed test: files that did not change while it ran become the good copies.

        `before` and `after` are `current()` taken just before and after the
        test; a file that changed in between was not necessarily what nginx
        tested, so its old good copy stays.

        Best effort, never raises for the file system: returns one line per
        copy that could not be stored or removed (path and errno). Such a
        file keeps its older good copy, or none; the reload goes ahead.
        """
        try:
            self.store.mkdir(parents=True, exist_ok=True)
            good = self.good()
        except OSError as error:
            return [f"cannot keep last good copies in {self.store}: {describe(error)}"]
        failed = []
        for name, data in before.items():
            if after.get(name) == data and good.get(name) != data:
                try:
                    replace(self.store / name, data)
                except OSError as error:
                    # A half-stored copy is not good: better none than a wrong one.
                    self._forget(name)
                    failed.append(f"cannot keep a last good copy in {self.store / name}: {describe(error)}")
        for name in good:
            if name not in before and name not in after:
                self._forget(name)
        return failed

    def _forget(self, name: str) -> None:
        try:
            (self.store / name).unlink(missing_ok=True)
        except OSError:
            pass  # a copy of a file that is gone is never put back: harmless

    def owns(self, path: Path) -> bool:
        """True if path is one of the generated files of the folder."""
        try:
            inside = path.parent.resolve() == self.folder.resolve()
        except OSError:
            return False
        return inside and not path.name.startswith(".") and self._ours(path)

    def _ours(self, path: Path) -> bool:
        if self.record is not None and path.name not in recorded(self.record, self.folder):
            return False
        return is_ours(path)

    def put_back(self, name: str) -> str | None:
        """Give one file its good copy back, or remove it if it has none; what was done, or
        None when the file already equals its good copy (then it cannot be the cause)."""
        path = self.folder / name
        good = self.good().get(name)
        if good is None:
            path.unlink(missing_ok=True)
            return "removed it (it has no good version yet)"
        try:
            if path.read_bytes() == good:
                return None
        except OSError:
            pass
        replace(path, good)
        return "put back its last good version"

    def put_back_all(self) -> str | None:
        """Give every generated file that differs from its good copy the good copy back;
        what was done, or None when all of them are already good."""
        good = self.good()
        changed = sorted(name for name, data in self.current().items() if good.get(name) != data)
        for name in changed:
            self.put_back(name)
        if not changed:
            return None
        return f"put back the last good version of every generated file that changed ({', '.join(changed)})"


def test_and_repair(nginx: Tester, copies: GoodCopies, log: logging.Logger) -> TestResult:
    """`nginx -t`; while it fails because of a generated file, put that file back and test again.

    Returns the last test's result: ok, or failing because of something that
    is not ours (reported by the caller). Every repair is logged in one line
    naming the file, the line, the template and nginx's own message.
    """
    result = TestResult(False, "not tested")
    for _ in range(MAX_REPAIRS):
        before = copies.current()
        result = nginx.test()
        if result.ok:
            _report_store(copies, copies.keep(before, copies.current()), log)
            return result
        blame = blamed(result.message)
        if blame is None or not copies.owns(blame.path):
            return result
        name = blame.path.name
        template = template_of(before.get(name, b""))
        try:
            done = copies.put_back(name) or copies.put_back_all()
        except OSError as error:
            log.error(
                "nginx -t failed because of generated file %s line %d: %s; cannot put back its last good version: %s",
                blame.path,
                blame.line,
                result.message,
                describe(error),
            )
            return result
        if done is None:
            return result
        source = f" (rendered from template {template})" if template else ""
        log.error(
            "nginx -t failed because of generated file %s line %d%s: %s; %s",
            blame.path,
            blame.line,
            source,
            result.message,
            done,
        )
    return result


def _report_store(copies: GoodCopies, failed: list[str], log: logging.Logger) -> None:
    """The first line of a store failure, once while it lasts (it would repeat at every reload)."""
    error = failed[0] if failed else ""
    if error and error != copies.store_error:
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        log.warning(
            "%s%s; reloading anyway, but a broken generated file cannot be put back to a version that is not stored",
            error,
            more,
        )
    elif copies.store_error and not error:
        log.info("last good copies are stored in %s again", copies.store)
    copies.store_error = error
