"""reloader: which file events count, and the debounce between them and `nginx -t`.

The debounce tests measure time on a machine that may be busy: they assert
lower bounds (which a slow machine cannot break) and generous upper bounds.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from dynamic_nginx import reloader
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.reloader import Debounce, Reloader
from support import settings_in
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

CONF = "/etc/nginx/conf.d"
TEMP = f"{CONF}/.dynamic-nginx-k2j4h1.tmp"


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        pytest.param(f"{CONF}/default.conf", False, id="a config file"),
        pytest.param("/etc/nginx/nginx.conf", False, id="the main config"),
        pytest.param("/etc/nginx/mime.types", False, id="an included non-.conf file"),
        pytest.param("/etc/nginx/templates/web.conf.j2", False, id="a template"),
        pytest.param(f"{CONF}/4913.conf", False, id="a name that merely starts with 4913"),
        pytest.param(TEMP, True, id="our own temp file"),
        pytest.param(f"{CONF}/.default.conf.swp", True, id="vim swap file"),
        pytest.param(f"{CONF}/default.conf.swp", True, id="swap suffix"),
        pytest.param(f"{CONF}/default.conf.swx", True, id="vim swx file"),
        pytest.param(f"{CONF}/default.conf~", True, id="backup file"),
        pytest.param(f"{CONF}/default.conf.tmp", True, id="tmp suffix"),
        pytest.param(f"{CONF}/4913", True, id="vim's write probe"),
        pytest.param(f"{CONF}/.hidden", True, id="hidden file"),
        pytest.param("/etc/nginx/.git/index", True, id="inside a hidden folder"),
        pytest.param("/etc/nginx/../nginx/conf.d/a.conf", False, id="a .. component is not hidden"),
    ],
)
def test_is_ignored(path: str, ignored: bool) -> None:
    assert reloader.is_ignored(path) is ignored


@pytest.mark.parametrize(
    ("event", "counted"),
    [
        pytest.param(FileModifiedEvent(f"{CONF}/web.conf"), True, id="file modified"),
        pytest.param(FileCreatedEvent(f"{CONF}/web.conf"), True, id="file created"),
        pytest.param(FileDeletedEvent(f"{CONF}/web.conf"), True, id="file deleted"),
        pytest.param(FileMovedEvent(TEMP, f"{CONF}/web.conf"), True, id="temp file moved over a real one"),
        pytest.param(FileMovedEvent(f"{CONF}/web.conf", f"{CONF}/web.conf~"), True, id="real file moved away"),
        pytest.param(FileMovedEvent(TEMP, f"{CONF}/.other.tmp"), False, id="temp moved to temp"),
        pytest.param(FileCreatedEvent(TEMP), False, id="temp file created"),
        pytest.param(FileModifiedEvent(TEMP), False, id="temp file written"),
        pytest.param(FileCreatedEvent(f"{CONF}/4913"), False, id="vim's probe created"),
        pytest.param(FileModifiedEvent(f"{CONF}/.web.conf.swp"), False, id="swap file written"),
        pytest.param(FileOpenedEvent(f"{CONF}/web.conf"), False, id="file opened (nginx -t reads it)"),
        pytest.param(FileClosedNoWriteEvent(f"{CONF}/web.conf"), False, id="file closed after reading"),
        pytest.param(FileClosedEvent(f"{CONF}/web.conf"), False, id="close after write (modified counted)"),
        pytest.param(DirModifiedEvent(CONF), False, id="folder listing changed"),
        pytest.param(DirCreatedEvent("/etc/nginx/snippets"), True, id="folder created"),
        pytest.param(DirDeletedEvent("/etc/nginx/snippets"), True, id="folder deleted"),
        pytest.param(DirMovedEvent("/etc/nginx/a", "/etc/nginx/b"), True, id="folder moved"),
    ],
)
def test_counts(event: FileSystemEvent, counted: bool) -> None:
    assert reloader.counts(event) is counted


@pytest.mark.parametrize(
    ("event", "complete"),
    [
        pytest.param(FileMovedEvent(TEMP, f"{CONF}/web.conf"), True, id="our temp file renamed into place"),
        pytest.param(FileMovedEvent(f"{CONF}/a.conf", f"{CONF}/b.conf"), True, id="a file renamed"),
        pytest.param(FileModifiedEvent(f"{CONF}/web.conf"), False, id="written in place: may be half done"),
        pytest.param(FileCreatedEvent(f"{CONF}/web.conf"), False, id="created: may be half written"),
        pytest.param(FileDeletedEvent(f"{CONF}/web.conf"), False, id="deleted"),
        pytest.param(FileMovedEvent(f"{CONF}/web.conf", f"{CONF}/web.conf~"), False, id="moved to a backup name"),
        pytest.param(FileMovedEvent(TEMP, f"{CONF}/.other.tmp"), False, id="temp to temp"),
        pytest.param(DirMovedEvent("/etc/nginx/a", "/etc/nginx/b"), False, id="a folder moved"),
        pytest.param(
            FileMovedEvent("/etc/nginx/templates/.x", "/etc/nginx/templates/x.conf.j2"),
            False,
            id="into a skipped folder",
        ),
    ],
)
def test_is_rename_into_place(event: FileSystemEvent, complete: bool) -> None:
    assert reloader.is_rename_into_place(event, [Path("/etc/nginx/templates")]) is complete


def test_folders_watched(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "conf.d").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    nginx = Nginx(["nginx"], tmp_path / "nginx.pid")

    inside = settings_in(tmp_path, watch_dirs=(etc, tmp_path / "missing"), conf_dir=etc / "conf.d")
    assert Reloader(inside, nginx).folders() == [etc]

    outside = settings_in(tmp_path, watch_dirs=(etc,), conf_dir=tmp_path / "elsewhere")
    assert Reloader(outside, nginx).folders() == [etc, tmp_path / "elsewhere"]


def test_newest_mtime_skips_ignored_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name, seconds in (
        ("a.conf", 100),
        ("sub/b.conf", 200),
        (".dynamic-nginx-x.tmp", 900),
        ("c.conf~", 800),
    ):
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (seconds, seconds))
    os.utime(tmp_path / "sub", (150, 150))
    assert reloader.newest_mtime([tmp_path, tmp_path / "missing"]) == 200


def settle_in_thread(debounce: Debounce) -> tuple[threading.Thread, list[float]]:
    """Start settle() in a daemon thread (so a hang cannot hang the suite); the list gets its return time."""
    returned: list[float] = []

    def run() -> None:
        debounce.settle()
        returned.append(time.monotonic())

    thread = threading.Thread(target=run, name="settle", daemon=True)
    thread.start()
    return thread, returned


def test_settle_waits_for_a_notice() -> None:
    debounce = Debounce(minimum=0.01, maximum=0.05)
    thread, returned = settle_in_thread(debounce)
    thread.join(0.5)
    assert returned == [], "settle() returned although nothing was noticed"
    debounce.notice()
    thread.join(10)
    assert len(returned) == 1


def test_settle_waits_for_minimum_of_quiet_after_the_last_notice() -> None:
    minimum = 1.0
    debounce = Debounce(minimum=minimum, maximum=60)
    first = time.monotonic()
    debounce.notice()
    thread, returned = settle_in_thread(debounce)
    time.sleep(0.1)
    second = time.monotonic()
    debounce.notice()
    noticed = time.monotonic()
    thread.join(30)
    (done,) = returned
    assert done - first >= minimum
    # settle() cannot clear before first + minimum, so a second notice made
    # before then is always part of this round. Only a stall of the whole
    # machine longer than 0.9 s could make this precondition false.
    assert noticed < first + minimum, f"the test thread stalled for {noticed - first:.2f}s"
    assert done - second >= minimum


def test_settle_clears_so_the_next_round_waits_again() -> None:
    debounce = Debounce(minimum=0.01, maximum=0.05)
    debounce.notice()
    debounce.settle()
    thread, returned = settle_in_thread(debounce)
    thread.join(0.3)
    assert returned == []
    debounce.notice()
    thread.join(10)
    assert len(returned) == 1


def test_a_steady_stream_cannot_hold_settle_past_maximum() -> None:
    minimum, maximum = 0.3, 1.0
    debounce = Debounce(minimum=minimum, maximum=maximum)
    stop = threading.Event()
    started = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            debounce.notice()
            started.set()
            stop.wait(0.02)  # far more often than `minimum`: never quiet

    noticer = threading.Thread(target=stream, name="noticer")
    noticer.start()
    try:
        assert started.wait(10)
        begin = time.monotonic()
        thread, returned = settle_in_thread(debounce)
        thread.join(maximum + 3)
    finally:
        stop.set()
        noticer.join(10)
    assert returned, f"settle() still waiting {maximum + 3}s into a stream of notices"
    assert returned[0] - begin < maximum + 3


CALM = (0.1, 1.0)
BURST = (0.5, 2.5)


@pytest.mark.parametrize(
    ("now", "first", "last", "recent", "expected"),
    [
        pytest.param(10.05, 10.0, 10.0, (), 0.05, id="calm: wait out the quiet time"),
        pytest.param(10.1, 10.0, 10.0, (), 0.0, id="calm: quiet long enough, act"),
        pytest.param(10.95, 10.0, 10.9, (), 0.05, id="calm: notices keep coming, the maximum caps the wait"),
        pytest.param(10.05, 10.0, 10.0, (9.0,), 0.05, id="one recent action is a rollout step: still calm"),
        pytest.param(10.5, 10.0, 10.45, (1.0, 2.0), 0.05, id="recent actions long ago: calm"),
        pytest.param(10.1, 10.0, 10.0, (8.5, 9.0), 0.4, id="burst: two actions in the window, longer quiet"),
        pytest.param(12.4, 10.0, 12.3, (8.5, 9.0), 0.1, id="burst: notices keep coming, the burst maximum caps it"),
        pytest.param(12.5, 10.0, 12.3, (8.5, 9.0), 0.0, id="burst: at the burst maximum, act"),
        pytest.param(10.1, 10.0, 10.0, (8.0, 9.0), 0.0, id="older action exactly a window before: calm"),
    ],
)
def test_remaining_wait(now: float, first: float, last: float, recent: tuple[float, ...], expected: float) -> None:
    assert reloader.remaining(now, first, last, recent, CALM, BURST, 2.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("now", "first", "last", "recent", "expected"),
    [
        pytest.param(10.0, 10.0, 10.0, (), reloader.RENAMED_QUIET, id="renames only: a few ms of quiet"),
        pytest.param(10.005, 10.0, 10.004, (), reloader.RENAMED_QUIET - 0.001, id="renames only: after the last"),
        pytest.param(10.005, 10.0, 10.0, (), 0.0, id="renames only: act long before calm quiet"),
        pytest.param(10.1, 10.0, 10.0, (8.5, 9.0), 0.4, id="renames in a burst: the burst quiet still holds"),
    ],
)
def test_remaining_wait_after_renames_only(
    now: float, first: float, last: float, recent: tuple[float, ...], expected: float
) -> None:
    assert reloader.remaining(now, first, last, recent, CALM, BURST, 2.0, renamed_only=True) == pytest.approx(expected)


def test_one_edit_in_place_among_renames_waits_the_calm_quiet() -> None:
    debounce = Debounce(minimum=1.0, maximum=3.0)
    debounce.notice(renamed=True)
    debounce.notice(renamed=False)
    started = time.monotonic()
    debounce.settle()
    assert time.monotonic() - started >= 0.95
    debounce.notice(renamed=True)  # a new round starts as renames-only again
    started = time.monotonic()
    debounce.settle()
    # RENAMED_QUIET is 5 ms; half a second leaves room for a busy machine
    # and still fails if the calm quiet of 1 s were applied.
    assert time.monotonic() - started < 0.5


def test_a_steady_stream_of_settles_switches_to_the_burst_window() -> None:
    debounce = Debounce(minimum=0.01, maximum=0.05, burst_minimum=0.2, burst_maximum=0.3, burst_window=5)
    for _ in range(reloader.BURST_AFTER):  # calm settles, quickly
        debounce.notice()
        debounce.settle()
    debounce.notice()
    started = time.monotonic()
    debounce.settle()
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    ("path", "counted"),
    [
        pytest.param("/etc/nginx/templates/web.conf.j2", False, id="a Jinja2 template: the watcher renders it"),
        pytest.param("/etc/nginx/templates/site.conf.template", False, id="an envsubst template (start-up only)"),
        pytest.param("/etc/nginx/conf.d/web.conf", True, id="configuration beside it"),
        pytest.param("/etc/nginx/templates-old/x.conf", True, id="a folder that merely starts the same"),
    ],
)
def test_changes_under_the_template_folder_do_not_count(path: str, counted: bool) -> None:
    event = FileModifiedEvent(path)
    assert reloader.counts(event, [Path("/etc/nginx/templates")]) is counted
