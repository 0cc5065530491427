"""Files bind-mounted on their own, and noticing when the host edits them in place.

inotify reports a change to the folder through which a file was written. A
file mounted on its own (`./nginx.conf:/etc/nginx/nginx.conf`) is written by
the host through the host's folder, so a watch on the container's /etc/nginx
never hears of it (a mounted folder is fine: its own inode is watched). Such
files are found in /proc/self/mountinfo and polled: a bind mount pins the
inode, so size, mtime and ctime tell an in-place edit. An editor that saves
by replacing the file gives the host a new inode that the container never
sees; mount the folder instead. filewatch.py polls the files found here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
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
