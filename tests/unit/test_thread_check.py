"""The check behind conftest's autouse fixture: it must see a thread left running, daemon or not, and only that."""

from __future__ import annotations

import threading

import pytest
from support import threads_left_behind


@pytest.mark.parametrize("daemon", [False, True], ids=["non-daemon", "daemon"])
def test_a_thread_left_running_is_reported(daemon: bool) -> None:
    before = threading.enumerate()
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="left-behind", daemon=daemon)
    thread.start()
    try:
        assert threads_left_behind(before, grace=0.1) == [thread]
    finally:
        release.set()
        thread.join()
    assert threads_left_behind(before, grace=0.1) == []


def test_threads_that_finish_within_the_grace_period_are_not_reported() -> None:
    before = threading.enumerate()
    release = threading.Event()
    finishing = threading.Thread(target=release.wait, args=(0.2,), name="finishing")
    finishing_daemon = threading.Thread(target=release.wait, args=(0.2,), name="finishing-daemon", daemon=True)
    finishing.start()
    finishing_daemon.start()
    try:
        assert threads_left_behind(before, grace=5) == []
        assert not finishing.is_alive()
        assert not finishing_daemon.is_alive()
    finally:
        release.set()
