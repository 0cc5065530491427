"""filewatch: one owner of watchdog observers and polling, on real files in tmp dirs.

Also: every run loop of the reloader's process (the reloader, the SIGHUP
answerer, the generations keeper, the template watch) ends when stopped, and
its threads are gone after a join.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dynamic_nginx import filewatch
from dynamic_nginx.filewatch import FilePoller, FileWatch
from dynamic_nginx.generations import Keeper
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.reloader import Reloader
from dynamic_nginx.settings import Wait
from dynamic_nginx.template_watch import TEMPLATES_CHANGED, TemplateWatch
from support import settings_in
from watchdog.events import (
    DirCreatedEvent,
    DirModifiedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

T = "/etc/nginx/templates"
log = logging.getLogger("test")


@pytest.mark.parametrize(
    ("event", "counted"),
    [
        pytest.param(FileModifiedEvent(f"{T}/a.conf.j2"), True, id="file edited"),
        pytest.param(FileCreatedEvent(f"{T}/b.conf.j2"), True, id="file added"),
        pytest.param(FileDeletedEvent(f"{T}/a.conf.j2"), True, id="file removed"),
        pytest.param(FileMovedEvent(f"{T}/.a.swp", f"{T}/a.conf.j2"), True, id="saved atomically"),
        pytest.param(DirCreatedEvent(f"{T}/partials"), True, id="folder added"),
        pytest.param(DirModifiedEvent(T), False, id="folder listing changed"),
        pytest.param(FileOpenedEvent(f"{T}/a.conf.j2"), False, id="file read"),
        pytest.param(FileClosedNoWriteEvent(f"{T}/a.conf.j2"), False, id="closed after reading"),
    ],
)
def test_counts(event: FileSystemEvent, counted: bool) -> None:
    assert filewatch.counts(event) is counted


def test_ignored_paths_do_not_count() -> None:
    def hidden(path: str) -> bool:
        return Path(path).name.startswith(".")

    assert not filewatch.counts(FileCreatedEvent(f"{T}/.x.tmp"), hidden)
    assert filewatch.counts(FileMovedEvent(f"{T}/.x.tmp", f"{T}/x.conf"), hidden)
    assert filewatch.is_rename_into_place(FileMovedEvent(f"{T}/.x.tmp", f"{T}/x.conf"), hidden)
    assert not filewatch.is_rename_into_place(FileMovedEvent(f"{T}/x.conf", f"{T}/.x.tmp"), hidden)
    assert not filewatch.is_rename_into_place(FileModifiedEvent(f"{T}/x.conf"), hidden)


class Changes:
    """What a FileWatch reported: `renamed` flags, in order."""

    def __init__(self) -> None:
        self.seen: queue.Queue[bool] = queue.Queue()

    def __call__(self, renamed: bool) -> None:
        self.seen.put(renamed)

    def next(self, timeout: float = 10.0) -> bool:
        return self.seen.get(timeout=timeout)

    def drain(self, quiet: float = 0.3) -> list[bool]:
        items = []
        while True:
            try:
                items.append(self.seen.get(timeout=quiet))
            except queue.Empty:
                return items


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in set(threading.enumerate()) - before if t.is_alive()]


def watching(folders: list[Path], changes: Changes, **kwargs: object) -> FileWatch:
    return FileWatch(folders, changes, log, **kwargs).start()  # type: ignore[arg-type]


def test_edits_renames_and_removals_under_the_folders_are_told(tmp_path: Path) -> None:
    (tmp_path / "site.conf").write_text("v1\n")
    changes = Changes()
    watch = watching([tmp_path], changes, ignored=lambda p: Path(p).name.startswith("."))
    try:
        assert changes.drain() == []  # starting is no change
        (tmp_path / "site.conf").write_text("v2\n")
        assert changes.next() is False
        changes.drain()
        (tmp_path / ".new.tmp").write_text("complete\n")
        assert changes.drain() == [], "an ignored file is no change"
        (tmp_path / ".new.tmp").rename(tmp_path / "new.conf")
        assert True in [changes.next(), *changes.drain()]
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "deep.conf").write_text("x\n")
        assert changes.next() is False
        changes.drain()
        (tmp_path / "site.conf").unlink()
        assert changes.next() is False
    finally:
        watch.stop()


def test_stop_ends_every_thread_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mounted = tmp_path / "nginx.conf"
    mounted.write_text("v1\n")
    info = tmp_path / "mountinfo"
    info.write_text(f"1 2 0:1 /host/nginx.conf {mounted} rw - ext4 /dev/vda1 rw\n")
    monkeypatch.setattr("dynamic_nginx.mounts.MOUNTINFO", info)
    before = set(threading.enumerate())
    watch = watching([tmp_path], Changes())
    assert watch.poller is not None and watch.poller.paths == [mounted]
    assert len(new_threads(before)) >= 3  # the observer, its emitter, the mounted-file poller
    watch.stop()
    assert new_threads(before) == []
    watch.stop()  # twice is harmless


def test_a_missing_folder_starts_nothing(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    watch = watching([tmp_path / "missing"], Changes())
    assert new_threads(before) == []
    watch.stop()


def test_a_file_mounted_on_its_own_is_polled_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    mounted = tmp_path / "nginx.conf"
    mounted.write_text("v1\n")
    info = tmp_path / "mountinfo"
    info.write_text(f"1 2 0:1 /x {mounted} ro - ext4 /dev/vda1 rw\n")
    monkeypatch.setattr("dynamic_nginx.mounts.MOUNTINFO", info)
    changes = Changes()
    watch = watching([tmp_path], changes, mount_poll_seconds=0.02)
    try:
        assert caplog.messages == [
            f"polling files mounted on their own (in-place edits only; mount folders to see every edit): {mounted}"
        ]
        assert watch.poller is not None
        watch.observer.stop()  # only the poller is left to see the next edit
        watch.observer.join(5)
        changes.drain()
        os.utime(mounted, ns=(1, 1))
        assert changes.next() is False
    finally:
        watch.stop()


def test_poll_sees_an_in_place_edit_and_a_removal(tmp_path: Path) -> None:
    path = tmp_path / "nginx.conf"
    path.write_text("v1\n")
    poller = FilePoller([path], lambda: None)
    seen: dict[Path, filewatch.Signature | None] = {}
    assert poller.poll(seen) is False  # the first look only records
    assert poller.poll(seen) is False

    inode = path.stat().st_ino
    path.write_text("v2, longer\n")
    assert path.stat().st_ino == inode
    assert poller.poll(seen) is True
    assert poller.poll(seen) is False

    os.utime(path, ns=(1, 1))  # same size, only the time moves
    assert poller.poll(seen) is True

    path.unlink()
    assert poller.poll(seen) is True
    path.write_text("back\n")
    assert poller.poll(seen) is True


def test_poller_thread_calls_back_and_stops(tmp_path: Path) -> None:
    path = tmp_path / "nginx.conf"
    path.write_text("v1\n")
    changed = threading.Event()
    before = set(threading.enumerate())
    poller = FilePoller([path], changed.set, interval=0.02).start()
    try:
        assert not changed.wait(0.2)
        path.write_text("v2\n")
        assert changed.wait(5)
    finally:
        poller.stop()
    assert new_threads(before) == []


def test_no_files_no_thread() -> None:
    before = set(threading.enumerate())
    poller = FilePoller([], lambda: None).start()
    assert new_threads(before) == []
    poller.stop()


def joined(target: Callable[[], None], stop: Callable[[], None], before: set[threading.Thread]) -> float:
    """Run target in a thread, stop it, join it: the seconds the join took (it must end)."""
    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(0.3)  # well into its loop
    assert thread.is_alive(), "the loop ended before it was stopped"
    stop()
    started = time.monotonic()
    thread.join(10)
    assert not thread.is_alive(), "the loop did not end when stopped"
    assert new_threads(before) == [], "threads it started outlive it"
    return time.monotonic() - started


def test_the_reloader_and_its_sighup_answerer_end_on_stop(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    before = set(threading.enumerate())
    reloader = Reloader(settings, Nginx(["nginx"], tmp_path / "nginx.pid"))
    answering = threading.Thread(target=reloader.answer_requests)
    answering.start()
    # Stopped while idle: no wait for the next reconcile, no reload after.
    joined(reloader.run, reloader.stop, before | {answering})
    answering.join(5)
    assert not answering.is_alive()
    assert reloader.reloads == 0


def test_the_reloader_ends_on_stop_while_a_change_settles(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, wait=Wait(12.0, 30.0))  # the reloader waits 30 s, at most 60 s
    before = set(threading.enumerate())
    reloader = Reloader(settings, Nginx(["nginx"], tmp_path / "nginx.pid"))

    def stop() -> None:
        (settings.conf_dir / "site.conf").write_text("x\n")
        assert reloader.debounce.wait(10)
        reloader.stop()

    assert joined(reloader.run, stop, before) < 5  # not the 30 s the change would settle for
    assert reloader.reloads == 0


def test_the_generations_keeper_ends_on_stop() -> None:
    before = set(threading.enumerate())
    keeper = Keeper(1, lambda: None, log, lambda _pid: [])
    stop = threading.Event()
    joined(lambda: keeper.run(stop), stop.set, before)


def test_the_template_watch_ends_on_stop(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    events: queue.Queue[object] = queue.Queue()
    watch = TemplateWatch(tmp_path, events).start()
    (tmp_path / "a.conf.j2").write_text("x\n")
    assert events.get(timeout=10) == TEMPLATES_CHANGED
    watch.stop()
    assert new_threads(before) == []
