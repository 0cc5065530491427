"""The watcher holds back additions during a burst of starts, never removals."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time

import pytest
from dynamic_nginx import events as E
from dynamic_nginx.settings import Settings
from dynamic_nginx.watcher import END, READY, Watcher
from support import container, proxy


def event(action: str, kind: str = "container", container: str = "c1") -> E.Event:
    return E.Event(kind, action, container, {})


@pytest.mark.parametrize(
    ("item", "addition"),
    [
        pytest.param(event("start"), True, id="start"),
        pytest.param(event("unpause"), True, id="unpause"),
        pytest.param(event("connect", "network"), True, id="network connect"),
        pytest.param(event("kill"), False, id="kill"),
        pytest.param(event("die"), False, id="die"),
        pytest.param(event("pause"), False, id="pause"),
        pytest.param(event("health_status"), False, id="health status (healthy or unhealthy)"),
        pytest.param(event("disconnect", "network"), False, id="network disconnect"),
        pytest.param(event("destroy"), False, id="destroy"),
    ],
)
def test_is_addition(item: E.Event, addition: bool) -> None:
    assert E.is_addition(item) is addition


SETTINGS = Settings(debounce_min=0.01, debounce_max=0.05, burst_starts=3, burst_quiet=0.3, burst_max=2.0,
                    resync_interval=5)


def collect(
    items: list[object], later: list[tuple[float, object]] = (), watcher: Watcher | None = None
) -> tuple[list[object], float]:
    """Run Watcher._collect on a real queue: `items` now, `later` fed from a thread after delays."""
    watcher = watcher or Watcher(SETTINGS)
    events: queue.Queue[object] = queue.Queue()
    for item in items:
        events.put(item)

    def feed() -> None:
        for delay, item in later:
            time.sleep(delay)
            events.put(item)

    feeder = threading.Thread(target=feed)
    feeder.start()
    started = time.monotonic()
    batch = watcher._collect(events)
    took = time.monotonic() - started
    feeder.join()
    return batch, took


def test_a_single_start_is_not_held() -> None:
    batch, _ = collect([event("start")], [(0.5, event("start", container="c2"))])
    assert batch == [event("start")]


def test_a_burst_of_starts_is_collected_until_quiet() -> None:
    starts = [event("start", container=f"c{i}") for i in range(3)]
    more = [(0.1, event("start", container=f"d{i}")) for i in range(4)]
    batch, took = collect(starts, more)
    assert batch == starts + [item for _, item in more]
    # Held through the four later starts (the feeder began slightly before the clock), then the quiet time.
    assert took >= 0.3 + 0.3


@pytest.mark.parametrize(
    "urgent",
    [
        pytest.param(event("kill", container="c0"), id="a kill"),
        pytest.param(event("die", container="c0"), id="a die"),
        pytest.param(object(), id="a template change"),
        pytest.param(END, id="the end of the stream"),
    ],
)
def test_anything_that_may_remove_ends_the_hold(urgent: object) -> None:
    starts = [event("start", container=f"c{i}") for i in range(3)]
    batch, took = collect(starts, [(0.1, urgent), (1.5, event("start", container="late"))])
    assert batch == starts + [urgent]
    assert took < 1.5


def test_a_batch_with_a_removal_is_never_held() -> None:
    items = [event("start", container=f"c{i}") for i in range(3)] + [event("kill", container="x")]
    batch, _ = collect(items, [(0.5, event("start", container="late"))])
    assert batch == items


def test_a_port_that_opened_is_acted_on_without_debounce() -> None:
    # SETTINGS debounce for 10 ms; a 1 s debounce shows the port skips it.
    watcher = Watcher(dataclasses.replace(SETTINGS, debounce_min=1.0, debounce_max=2.0))
    batch, took = collect([READY], [(0.3, event("start", container="later"))], watcher)
    assert batch == [READY]
    assert took < 0.25  # the later start (0.3 s) was not waited for


def test_what_is_queued_with_a_port_that_opened_comes_along() -> None:
    batch, _ = collect([READY, event("die", container="c9"), READY])
    assert batch == [READY, event("die", container="c9"), READY]


def test_during_a_burst_opened_ports_are_held_like_starts() -> None:
    watcher = Watcher(SETTINGS)
    starts = [event("start", container=f"c{i}") for i in range(3)]
    collect(starts, watcher=watcher)  # a burst is under way
    batch, took = collect([READY], [(0.1, READY), (0.1, event("start", container="c4"))], watcher)
    assert batch == [READY, READY, event("start", container="c4")]
    assert took >= 0.2 + 0.3  # held through both, then the quiet time


PROXY_ID = "p" * 64
A, B = "a" * 64, "b" * 64


def kill(container: str) -> E.Event:
    return E.Event("container", "kill", container, {"signal": "15"})


@pytest.mark.parametrize(
    ("batch", "stopping", "changed"),
    [
        pytest.param([READY], set(), set(), id="a port opened: Docker's last answer"),
        pytest.param([kill(A)], {A}, set(), id="a kill: nothing to ask"),
        pytest.param([kill(A), event("die", container=A)], {A}, set(), id="a stopping replica dies"),
        pytest.param([event("start", container=A)], set(), {A}, id="a start: inspect it alone"),
        pytest.param([event("start", container=A), READY], set(), {A}, id="a start beside a port"),
        pytest.param([event("health_status", container=A), event("die", container=B)], set(), {A, B}, id="two"),
        pytest.param([event(a, container=c) for a in ("start",) for c in "abcd"], set(), None, id="four: list"),
        pytest.param([event("connect", "network", container=PROXY_ID)], set(), None, id="the proxy's network"),
        pytest.param([event("start", container="")], set(), None, id="an event without a container"),
        pytest.param([object()], set(), None, id="a template changed"),
        pytest.param([END], set(), None, id="the stream ended"),
    ],
)
def test_what_a_batch_asks_of_docker(batch: list[object], stopping: set[str], changed: set[str] | None) -> None:
    watcher = Watcher(SETTINGS)
    watcher._stopping = frozenset(stopping)
    watcher._listed = (proxy(), [container(name, id=name) for name in (A, B)])
    assert watcher._changed(batch, PROXY_ID) == changed


@pytest.mark.parametrize(
    ("batch", "changed"),
    [
        pytest.param([event("connect", "network", container="new")], set(), id="a new one's network: wait for start"),
        pytest.param([event("disconnect", "network", container="new")], set(), id="... also a disconnect"),
        pytest.param([event("die", container="new")], set(), id="a container never listed dies"),
        pytest.param([event("start", container="new")], {"new"}, id="its start"),
        pytest.param([event("connect", "network", container=A)], {A}, id="a listed one's network"),
    ],
)
def test_only_a_start_brings_in_an_unlisted_container(batch: list[object], changed: set[str]) -> None:
    watcher = Watcher(SETTINGS)
    watcher._listed = (proxy(), [container("shop-web-1", id=A)])
    assert watcher._changed(batch, PROXY_ID) == changed


def test_before_the_first_list_everything_is_listed() -> None:
    assert Watcher(SETTINGS)._changed([READY], PROXY_ID) is None


def labelled(action: str, container: str, **labels: str) -> E.Event:
    return E.Event("container", action, container, labels)


@pytest.mark.parametrize(
    ("event_", "scope", "relevant"),
    [
        pytest.param(labelled("start", "new", **{"com.docker.compose.project": "shop"}), "project", True, id="ours starts"),
        pytest.param(labelled("start", "new", **{"com.docker.compose.project": "other"}), "project", False,
                     id="another project's start: no wake-up, no burst"),
        pytest.param(labelled("start", "new", **{"dynamic-nginx.enable": "true"}), "all", True, id="opted in, scope all"),
        pytest.param(labelled("start", "new", **{"dynamic-nginx.enable": "true"}), "project", False,
                     id="opted in, scope project"),
        pytest.param(labelled("die", A), "project", True, id="a listed container, whatever its labels say"),
        pytest.param(event("connect", "network", container=A), "project", True, id="a listed one's network"),
        pytest.param(event("connect", "network", container="new"), "project", False, id="an unlisted one's network"),
        pytest.param(event("disconnect", "network", container="proxy"), "project", True, id="the proxy's network"),
    ],
)
def test_events_about_containers_never_served_are_dropped(event_: E.Event, scope: str, relevant: bool) -> None:
    watcher = Watcher(dataclasses.replace(SETTINGS, scope=scope))
    watcher._listed = (proxy(id="proxy"), [container("shop-web-1", id=A)])
    assert watcher._relevant(event_) is relevant


def test_before_the_first_list_every_event_is_relevant() -> None:
    assert Watcher(SETTINGS)._relevant(labelled("start", "new", **{"com.docker.compose.project": "other"}))
