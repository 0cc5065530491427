"""Fixtures every unit test gets."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from support import threads_left_behind

# Hypothesis caches what it learns in ./.hypothesis, from collection on; only a
# cache, and the work tree is not the place for it.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "dynamic-nginx-unit-hypothesis")


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    """Fail a test that leaves any thread running (daemon or not), naming it.

    The watcher's event pump, the watchdog, the reloader's observer and the
    readiness prober are daemon threads; one left running by a test keeps
    acting on shared state during later tests, and shows a loop that cannot
    be stopped.
    """
    before = threading.enumerate()
    yield
    left = sorted(t.name for t in threads_left_behind(before))
    if left:
        pytest.fail("the test left thread(s) running: " + ", ".join(left), pytrace=False)
