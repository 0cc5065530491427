"""The file writer: put rendered texts into conf.d atomically, only when bytes change.

A file is ours to replace when its name is an output of a template and its
first line starts with marker.MARKER; ours to remove when its name is in
the record of what was written (rundir.WRITTEN) and it has the marker. Any
other file is the user's and is never touched: a user's file with an
output's name keeps that output from being written, and a file with the
marker that was not written under its name (a copy that pins a generated
file) is not removed; each is reported in `conflicts`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path

from .marker import MARKER, TEMP_PREFIX, describe, is_ours, record_names, recorded, replace


@dataclasses.dataclass(frozen=True)
class Changes:
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    # One line per file that could not be written or removed: "cannot write PATH: [Errno N] why".
    failed: tuple[str, ...] = ()
    # One line per user file in the way (with the fix): logged once while it lasts.
    conflicts: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.written or self.removed)


def write_atomic(path: Path, text: str) -> bool:
    """Replace path with text via a temp file in the same folder; False if unchanged.

    The temp name starts with a dot so nginx's `*.conf` include and the
    reloader both ignore it.
    """
    data = text.encode()
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    replace(path, data)
    return True


def sync(folder: Path, outputs: Mapping[str, str], keep: Collection[str] = (), record: Path | None = None) -> Changes:
    """Make folder hold exactly `outputs` among our files.

    Our files not in outputs are removed, except names in `keep` (templates
    that failed this time keep their previous output). Only names in the
    `record` can be removed (no record: none), and the record is extended
    with every output name before any file is written, so that the reloader,
    which reads it, owns a new file as soon as it appears.

    Never raises for the file system (a full disk, a read-only mount): a file
    that cannot be written keeps its previous version, which nginx still
    serves, its temp file is removed, and `failed` says which file and why so
    the caller can report it and try again. The other files are still written.
    """
    written: list[str] = []
    failed: list[str] = []
    conflicts: list[str] = []
    names = recorded(record, folder) if record else set()
    mine = set(outputs) | set(keep)
    if record and not mine <= names:
        try:
            record_names(record, folder, names | mine)
            names |= mine
        except OSError as error:
            failed.append(f"cannot write {record}: {describe(error)}")
    for name, text in sorted(outputs.items()):
        path = folder / name
        if path.exists() and not (path.is_file() and is_ours(path)):
            conflicts.append(
                f"{path} is your file (its first line is not {MARKER!r}), so dynamic-nginx does not "
                f"write its own {name} over it: rename your file to let dynamic-nginx generate {name}, "
                "or remove it to let dynamic-nginx generate it in its place"
            )
            continue
        try:
            if write_atomic(path, text):
                written.append(name)
        except OSError as error:
            failed.append(f"cannot write {path}: {describe(error)}")
    removed = []
    try:
        paths = sorted(folder.iterdir())
    except OSError as error:
        paths = []
        failed.append(f"cannot list {folder}: {describe(error)}")
    for path in paths:
        name = path.name
        if name in outputs or name in keep or name.startswith(TEMP_PREFIX):
            continue
        if not (path.is_file() and is_ours(path)):
            continue
        if name not in names:
            conflicts.append(
                f"{path} starts with the dynamic-nginx marker but dynamic-nginx did not write it under "
                "this name (a copy of a generated file?), so it is left alone: if it repeats upstreams "
                "that dynamic-nginx generates, nginx -t fails on the duplicates and says so; remove it, "
                "or remove its first line to make it plainly yours"
            )
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            failed.append(f"cannot remove {path}: {describe(error)}")
            continue
        removed.append(name)
    # Names whose files are gone leave the record: a file the user makes later under such a
    # name was not written by us.
    present = {path.name for path in paths} - set(removed)
    kept = (names & present) | (names & mine)
    if record and paths and kept != names:
        try:
            record_names(record, folder, kept)
        except OSError as error:
            failed.append(f"cannot write {record}: {describe(error)}")
    return Changes(written=tuple(written), removed=tuple(removed), failed=tuple(failed), conflicts=tuple(conflicts))


def remove_temp_files(folder: Path) -> None:
    """Temp files left by a writer that was killed mid-write (best effort: a read-only
    folder cannot hold any new ones either)."""
    try:
        for path in folder.glob(TEMP_PREFIX + "*"):
            path.unlink(missing_ok=True)
    except OSError:
        pass
