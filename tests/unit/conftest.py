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
    """Fail a test that leaves a non-daemon thread running, as watchdog's own suite does.

    The watcher's event pump and the reloader's observer are threads; one left
    running by a test would keep the process alive and leak into later tests.
    """
    before = threading.enumerate()
    yield
    left = threads_left_behind(before)
    if left:
        pytest.fail(
            "the test left non-daemon thread(s) running: " + ", ".join(t.name for t in left),
            pytrace=False,
        )
