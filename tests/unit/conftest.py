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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "leaves_thread(name, reason): the test is known to leave the thread `name` running, because the loop "
        "has no way to stop yet; strict: the test fails once it no longer does, so the marker cannot go stale",
    )


@pytest.fixture(autouse=True)
def no_thread_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves any thread running (daemon or not), naming it.

    The watcher's event pump, the watchdog, the reloader's observer and the
    readiness prober are daemon threads; one left running by a test keeps
    acting on shared state during later tests, and shows a loop that cannot
    be stopped.
    """
    known = {m.args[0] for m in request.node.iter_markers("leaves_thread")}
    before = threading.enumerate()
    yield
    left = threads_left_behind(before)
    names = {t.name for t in left}
    unexpected = sorted(names - known)
    if unexpected:
        pytest.fail("the test left thread(s) running: " + ", ".join(unexpected), pytrace=False)
    if known - names:
        pytest.fail(
            f"the test no longer leaves {', '.join(sorted(known - names))} running: remove its leaves_thread marker",
            pytrace=False,
        )
