"""The check behind conftest's autouse fixture: it must see a thread left running, and only that."""

from __future__ import annotations

import threading

from support import threads_left_behind


def test_a_non_daemon_thread_left_running_is_reported() -> None:
    before = threading.enumerate()
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="left-behind")
    thread.start()
    try:
        assert threads_left_behind(before, grace=0.1) == [thread]
    finally:
        release.set()
        thread.join()
    assert threads_left_behind(before, grace=0.1) == []


def test_daemon_threads_and_finishing_threads_are_not_reported() -> None:
    before = threading.enumerate()
    release = threading.Event()
    daemon = threading.Thread(target=release.wait, name="daemon", daemon=True)
    finishing = threading.Thread(target=release.wait, args=(0.2,), name="finishing")
    daemon.start()
    finishing.start()
    try:
        assert threads_left_behind(before, grace=5) == []
        assert not finishing.is_alive()
    finally:
        release.set()
        daemon.join()
