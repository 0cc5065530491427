"""write: atomic, change-checked writes into conf.d that only ever remove our own files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from dynamic_nginx import write
from dynamic_nginx.marker import MARKER
from dynamic_nginx.write import Changes

OURS = f"{MARKER} from x.conf.j2; changes are overwritten.\nupstream a.upstream {{ server 10.0.0.1; }}\n"
NEW = f"{MARKER} from x.conf.j2; changes are overwritten.\nupstream a.upstream {{ server 10.0.0.2; }}\n"
USERS = "server { listen 80; }\n"
OLD_NS = 1_000_000_000  # 2001-09-09: any rewrite would move the mtime far from it


def files(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir()) if path.is_file()}


def test_write_atomic_creates_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    assert write.write_atomic(path, OURS) is True
    assert path.read_text() == OURS
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert files(tmp_path) == {"a.conf": OURS}


def test_write_atomic_leaves_equal_bytes_alone(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text(OURS)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    before = path.stat()

    assert write.write_atomic(path, OURS) is False

    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, OLD_NS)
    assert files(tmp_path) == {"a.conf": OURS}


def test_write_atomic_replaces_the_file_rather_than_rewriting_it(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text(OURS)
    before = path.stat()
    with path.open() as reader:  # what nginx, mid-reload, may hold open
        assert write.write_atomic(path, NEW) is True
        assert reader.read() == OURS  # the old file is intact: never half-written
    assert path.read_text() == NEW
    assert path.stat().st_ino != before.st_ino
    assert files(tmp_path) == {"a.conf": NEW}  # no temp file left behind


@pytest.mark.parametrize(
    ("before", "outputs", "keep", "after", "changes"),
    [
        pytest.param(
            {},
            {"a.conf": OURS, "b.conf": NEW},
            (),
            {"a.conf": OURS, "b.conf": NEW},
            Changes(written=("a.conf", "b.conf")),
            id="writes new outputs",
        ),
        pytest.param(
            {"a.conf": OURS},
            {"a.conf": OURS},
            (),
            {"a.conf": OURS},
            Changes(),
            id="unchanged output is not a change",
        ),
        pytest.param(
            {"a.conf": OURS},
            {"a.conf": NEW},
            (),
            {"a.conf": NEW},
            Changes(written=("a.conf",)),
            id="changed output is written",
        ),
        pytest.param(
            {"a.conf": OURS, "old.conf": OURS},
            {"a.conf": OURS},
            (),
            {"a.conf": OURS},
            Changes(removed=("old.conf",)),
            id="our stale file is removed",
        ),
        pytest.param(
            {"default.conf": USERS, "notes.txt": "mine\n"},
            {},
            (),
            {"default.conf": USERS, "notes.txt": "mine\n"},
            Changes(),
            id="files without the marker are never removed",
        ),
        pytest.param(
            {"late.conf": f"# Hello\n{MARKER}\n"},
            {},
            (),
            {"late.conf": f"# Hello\n{MARKER}\n"},
            Changes(),
            id="marker on a later line does not make a file ours",
        ),
        pytest.param(
            {"broken.conf": OURS, "old.conf": OURS},
            {},
            ("broken.conf",),
            {"broken.conf": OURS},
            Changes(removed=("old.conf",)),
            id="keep holds the output of a template that failed",
        ),
        pytest.param(
            {".dynamic-nginx-abc123.tmp": OURS},
            {},
            (),
            {".dynamic-nginx-abc123.tmp": OURS},
            Changes(),
            id="temp files of a concurrent write are left alone",
        ),
    ],
)
def test_sync(
    tmp_path: Path,
    before: dict[str, str],
    outputs: dict[str, str],
    keep: tuple[str, ...],
    after: dict[str, str],
    changes: Changes,
) -> None:
    folder = tmp_path / "conf.d"
    folder.mkdir()
    for name, text in before.items():
        (folder / name).write_text(text)
    record = tmp_path / "written"  # every file there before was written by the watcher
    record.write_text("".join(f"{folder / name}\n" for name in before))
    assert write.sync(folder, outputs, keep=keep, record=record) == changes
    assert files(folder) == after


def test_sync_leaves_folders_alone(tmp_path: Path) -> None:
    (tmp_path / "sub.conf").mkdir()
    (tmp_path / "sub.conf" / "x.conf").write_text(OURS)
    assert write.sync(tmp_path, {}) == Changes()
    assert (tmp_path / "sub.conf" / "x.conf").read_text() == OURS


@pytest.mark.parametrize(
    ("changes", "truth"),
    [
        pytest.param(Changes(), False, id="nothing"),
        pytest.param(Changes(written=("a.conf",)), True, id="written"),
        pytest.param(Changes(removed=("a.conf",)), True, id="removed"),
    ],
)
def test_changes_are_true_when_anything_happened(changes: Changes, truth: bool) -> None:
    assert bool(changes) is truth


def test_remove_temp_files(tmp_path: Path) -> None:
    for name in (".dynamic-nginx-1.tmp", ".dynamic-nginx-x", "a.conf", ".other.tmp", "dynamic-nginx-1.tmp"):
        (tmp_path / name).write_text("x")
    write.remove_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp", "a.conf", "dynamic-nginx-1.tmp"]
