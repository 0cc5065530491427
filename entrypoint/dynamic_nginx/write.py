"""The file writer: put rendered texts into conf.d atomically, only when bytes change.

A file is ours when its first line starts with the render MARKER; files
without it are the user's and are never touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path

from .marker import TEMP_PREFIX, describe, is_ours, replace

__all__ = ["Changes", "describe", "is_ours", "remove_temp_files", "sync", "write_atomic"]


@dataclasses.dataclass(frozen=True)
class Changes:
    written: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    # One line per file that could not be written or removed: "cannot write PATH: [Errno N] why".
    failed: tuple[str, ...] = ()

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


def sync(folder: Path, outputs: Mapping[str, str], keep: Collection[str] = ()) -> Changes:
    """Make folder hold exactly `outputs` among our files.

    Our files not in outputs are removed, except names in `keep` (templates
    that failed this time keep their previous output).

    Never raises for the file system (a full disk, a read-only mount): a file
    that cannot be written keeps its previous version, which nginx still
    serves, its temp file is removed, and `failed` says which file and why so
    the caller can report it and try again. The other files are still written.
    """
    written: list[str] = []
    failed: list[str] = []
    for name, text in sorted(outputs.items()):
        try:
            if write_atomic(folder / name, text):
                written.append(name)
        except OSError as error:
            failed.append(f"cannot write {folder / name}: {describe(error)}")
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
        if path.is_file() and is_ours(path):
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                failed.append(f"cannot remove {path}: {describe(error)}")
                continue
            removed.append(name)
    return Changes(written=tuple(written), removed=tuple(removed), failed=tuple(failed))


def remove_temp_files(folder: Path) -> None:
    """Temp files left by a writer that was killed mid-write (best effort: a read-only
    folder cannot hold any new ones either)."""
    try:
        for path in folder.glob(TEMP_PREFIX + "*"):
            path.unlink(missing_ok=True)
    except OSError:
        pass
