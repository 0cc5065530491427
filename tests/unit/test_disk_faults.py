"""Disk and file-watch faults, with real failures of the real file system and kernel.

Nothing here is mocked: a write fails because its folder is really a file
(ENOTDIR) or because the process's file size limit really is exceeded
(RLIMIT_FSIZE with SIGXFSZ ignored: EFBIG, as a full disk fails a write
halfway); inotify is refused because a user's inotify instances are really
used up. A full disk itself (ENOSPC) needs a mount, which an unprivileged
test container cannot make: the integration tests fill a tmpfs for that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dynamic_nginx import lastgood, rundir, write
from dynamic_nginx.batching import RETRY_WRITE
from dynamic_nginx.marker import MARKER, TEMP_PREFIX
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.rebuild import Output
from dynamic_nginx.reloader import Reloader
from dynamic_nginx.view import DockerView
from support import needs_nginx, nginx_command, proxy, settings_in

GOOD = f"{MARKER} from site.conf.j2; changes are overwritten.\nupstream a.upstream {{ server 10.0.0.1:80; }}\n"
NEWER = GOOD.replace("10.0.0.1", "10.0.0.2")
LIMIT = 64  # bytes: smaller than any generated file above


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes past `limit` bytes fail with EFBIG (SIGXFSZ ignored, so the process lives)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def blocked_folder(tmp_path: Path) -> Path:
    """A folder path whose parent is a regular file: every write under it fails with ENOTDIR."""
    (tmp_path / "blocked").write_text("a file where a folder should be\n")
    return tmp_path / "blocked" / "conf.d"


def test_sync_reports_a_file_it_cannot_write_without_raising(tmp_path: Path) -> None:
    folder = blocked_folder(tmp_path)
    changes = write.sync(folder, {"site.conf": GOOD})
    assert not changes
    assert changes.failed == (
        f"cannot write {folder}/site.conf: [Errno 20] Not a directory",
        f"cannot list {folder}: [Errno 20] Not a directory",
    )


def test_a_write_that_fails_halfway_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "site.conf").write_text(GOOD)
    (tmp_path / "other.conf").write_text(f"{MARKER}\nsmall;\n")  # ours, and small enough to rewrite
    with file_size_limit(LIMIT):
        changes = write.sync(tmp_path, {"site.conf": NEWER, "other.conf": f"{MARKER}\nsmaller;\n"})
    assert changes.written == ("other.conf",)  # the others are still written
    assert changes.failed == (f"cannot write {tmp_path}/site.conf: [Errno 27] File too large",)
    assert (tmp_path / "site.conf").read_text() == GOOD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.conf", "site.conf"]
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))


def test_the_watcher_logs_a_failed_write_once_and_retries_until_it_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = blocked_folder(tmp_path)
    retries: queue.Queue[object] = queue.Queue()
    output = Output(dataclasses.replace(settings_in(tmp_path), conf_dir=folder), retry=lambda: retries.put("retry"))
    caplog.set_level(logging.INFO, "watcher")

    for _ in range(3):  # the first try and two retries
        assert not output.write({"site.conf": GOOD})
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"cannot list {folder}: [Errno 20] Not a directory; nginx keeps its current configuration; retrying",
        f"cannot write {folder}/site.conf: [Errno 20] Not a directory; nginx keeps its current configuration; retrying",
    ]
    assert retries.get(timeout=10) == "retry"  # a timed retry: no Docker event needed

    (tmp_path / "blocked").unlink()  # the operator frees the disk
    folder.mkdir(parents=True)
    assert output.write({"site.conf": GOOD}).written == ("site.conf",)
    assert (folder / "site.conf").read_text() == GOOD
    assert caplog.records[-1].getMessage() == f"files in {folder} can be written again"


def test_a_write_retry_asks_docker_nothing_new() -> None:
    view = DockerView()
    assert view.changed([RETRY_WRITE], "proxy") is None  # nothing listed yet: list
    view.assume(proxy())
    assert view.changed([RETRY_WRITE], "proxy") == set()  # render from the last list


@needs_nginx
def test_an_unwritable_store_of_good_copies_does_not_fail_the_test(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    (conf / "site.conf").write_text(GOOD)
    store = blocked_folder(tmp_path).parent / "good"
    copies = lastgood.GoodCopies(conf, store)
    nginx = Nginx(nginx_command(tmp_path, conf), tmp_path / "nginx.pid")

    assert lastgood.test_and_repair(nginx, copies, logging.getLogger("reloader")).ok
    (conf / "site.conf").write_text(NEWER)
    assert lastgood.test_and_repair(nginx, copies, logging.getLogger("reloader")).ok
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings  # once, not at every reload
    assert warnings[0].startswith(
        f"cannot keep last good copies in {store}: [Errno 20] Not a directory; reloading anyway"
    )


@needs_nginx
def test_a_reload_goes_ahead_when_good_copies_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_in(tmp_path)
    write.sync(settings.conf_dir, {"site.conf": GOOD}, record=settings.run_dir / rundir.WRITTEN)  # as the watcher does
    command = nginx_command(tmp_path, settings.conf_dir)
    master = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid_file = tmp_path / "nginx.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        reloader = Reloader(settings, Nginx(command, pid_file))
        (settings.conf_dir / "site.conf").write_text(NEWER)
        with file_size_limit(LIMIT):  # a good copy is bigger than this: its write fails halfway
            assert reloader.apply()
        assert reloader.reloads == 1
        store = settings.run_dir / lastgood.STORE
        assert [r.getMessage().split(";")[0] for r in caplog.records if r.levelno == logging.WARNING] == [
            f"cannot keep a last good copy in {store}/site.conf: [Errno 27] File too large"
        ]
        assert not list(store.iterdir())  # no half copy that would be "put back" one day
    finally:
        master.terminate()
        master.wait(10)


def test_reconcile_notices_a_change_that_no_event_reported(tmp_path: Path) -> None:
    """No observer runs here, so no event can arrive: only the fingerprint sees the change."""
    settings = settings_in(tmp_path)
    site = settings.conf_dir / "site.conf"
    site.write_text(GOOD)
    reloader = Reloader(settings, Nginx(["nginx"], tmp_path / "nginx.pid"))
    reloader._tested = reloader.fingerprint()
    assert not reloader.reconcile()
    assert not reloader.debounce.wait(0)

    # What the watcher does: same size, written to a temp file and renamed into place.
    (settings.conf_dir / ".dynamic-nginx-x.tmp").write_text(NEWER)
    assert not reloader.reconcile(), "a temp file is not configuration"
    (settings.conf_dir / ".dynamic-nginx-x.tmp").rename(site)
    assert reloader.reconcile()
    assert reloader.debounce.wait(0)


def test_templates_are_not_part_of_the_fingerprint(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, watch_dirs=(tmp_path,))
    reloader = Reloader(settings, Nginx(["nginx"], tmp_path / "nginx.pid"))
    reloader._tested = reloader.fingerprint()
    (settings.user_templates / "site.conf.j2").write_text("{{ nothing }}\n")
    assert not reloader.reconcile()  # the watcher renders it; its output is what counts


# Runs as a user of its own, whose inotify instances it uses up first: a real
# EMFILE from inotify_init, as on a host where other containers hold them all.
# Nothing else runs as this user, so nobody else is short of inotify.
UID = 54321
NO_INOTIFY = textwrap.dedent(
    """
    import ctypes, errno, logging, sys, time
    from pathlib import Path
    from dynamic_nginx import filewatch

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    libc = ctypes.CDLL(None, use_errno=True)
    held = 0
    while libc.inotify_init1(0) >= 0:
        held += 1
        assert held < 100000, "no inotify instance limit"
    assert ctypes.get_errno() == errno.EMFILE, ctypes.get_errno()

    seen = []
    folder = Path(sys.argv[1])
    watch = filewatch.FileWatch([folder], seen.append, logging.getLogger("reloader")).start()
    print(type(watch.observer).__name__, flush=True)
    (folder / "site.conf").write_text("changed\\n")
    deadline = time.monotonic() + 15
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    print("changed" if seen else "no event", flush=True)
    watch.stop()
    """
)


def test_the_reloader_polls_when_inotify_cannot_be_had() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it runs in the image's test stage) to run a helper as another user")
    folder = Path(tempfile.mkdtemp())
    os.chown(folder, UID, UID)
    done = subprocess.run(
        [sys.executable, "-c", NO_INOTIFY, str(folder)],
        user=UID,
        group=UID,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["PollingObserver", "changed"], done.stdout
    warnings = [line for line in done.stderr.splitlines() if line.startswith("reloader: WARNING")]
    assert warnings == [
        f"reloader: WARNING: cannot watch {folder} with inotify ([Errno 24] inotify instance limit reached); "
        "polling them every 1 s instead (raise fs.inotify.max_user_watches or max_user_instances on the host "
        "to get inotify back)"
    ], done.stderr
