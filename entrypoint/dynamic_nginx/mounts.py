"""Files bind-mounted on their own, and noticing when the host edits them in place.

inotify reports a change to the folder through which a file was written. A
file mounted on its own (`./nginx.conf:/etc/nginx/nginx.conf`) is written by
the host through the host's folder, so a watch on the container's /etc/nginx
never hears of it (a mounted folder is fine: its own inode is watched). Such
files are found in /proc/self/mountinfo and polled: a bind mount pins the
inode, so size, mtime and ctime tell an in-place edit. An editor that saves
by replacing the file gives the host a new inode that the container never
sees; mount the folder instead.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
POLL_SECONDS = 0.5
_ESCAPE_RE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: str) -> list[Path]:
    """Every mount point in a /proc/self/mountinfo text (its fifth field)."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(Path(_unescape(fields[4])))
    return points


def is_under(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def mounted_files(folders: Iterable[Path], mountinfo: Path | None = None) -> list[Path]:
    """The regular files under the folders that are mount points of their own."""
    try:
        text = (mountinfo or MOUNTINFO).read_text()
    except OSError:
        return []
    folders = list(folders)
    return sorted({p for p in mount_points(text) if is_under(p, folders) and p.is_file()})


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FilePoller:
    """Calls `changed()` (from its own daemon thread) when any of the files changes."""

    def __init__(self, paths: Sequence[Path], changed: Callable[[], None], interval: float = POLL_SECONDS):
        self.paths = list(paths)
        self.changed = changed
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mounted-files", daemon=True)

    def start(self) -> FilePoller:
        if self.paths:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def poll(self, seen: dict[Path, tuple[int, int, int, int] | None]) -> bool:
        """Compare the files with `seen` (updated in place); True if any differed."""
        differed = False
        for path in self.paths:
            now = _signature(path)
            if seen.get(path, now) != now:
                differed = True
            seen[path] = now
        return differed

    def _run(self) -> None:
        seen: dict[Path, tuple[int, int, int, int] | None] = {}
        self.poll(seen)
        while not self._stop.wait(self.interval):
            if self.poll(seen):
                self.changed()


def watch(folders: Iterable[Path], changed: Callable[[], None], log: Callable[[str], None]) -> FilePoller:
    """Start polling the single-file mounts under the folders; logs which ones, if any."""
    files = mounted_files(folders)
    if files:
        log(
            "polling files mounted on their own (in-place edits only; mount folders to see every edit): "
            + ", ".join(map(os.fspath, files))
        )
    return FilePoller(files, changed).start()
