"""The watcher holds back additions during a burst of starts, never removals."""

from __future__ import annotations

import dataclasses

import pytest
from dynamic_nginx import events as E
from dynamic_nginx.batching import END, READY, WAKE, Batcher, Waits
from dynamic_nginx.view import DockerView
from fake_clock import FakeClock, Scripted
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


WAITS = Waits(debounce_min=0.01, debounce_max=0.05, burst_starts=3, burst_quiet=0.3, burst_max=2.0)


def collect(
    items: list[object], later: list[tuple[float, object]] = (), batcher: Batcher | None = None
) -> tuple[list[object], float]:
    """Run Batcher.collect on a fake clock: `items` queued now, each of `later` after a delay
    from the one before; the time it took is on the fake clock."""
    batcher = batcher or Batcher(WAITS, FakeClock())
    clock = batcher.clock
    assert isinstance(clock, FakeClock)
    at = 0.0
    timed = []
    for delay, item in later:
        at += delay
        timed.append((at, item))
    started = clock.now()
    batch = batcher.collect(Scripted(clock, items, timed), resync=5)
    return batch, clock.now() - started


def test_a_single_start_is_not_held() -> None:
    batch, _ = collect([event("start")], [(0.5, event("start", container="c2"))])
    assert batch == [event("start")]


def test_a_burst_of_starts_is_collected_until_quiet() -> None:
    starts = [event("start", container=f"c{i}") for i in range(3)]
    more = [(0.1, event("start", container=f"d{i}")) for i in range(4)]
    batch, took = collect(starts, more)
    assert batch == starts + [item for _, item in more]
    assert took == pytest.approx(0.4 + 0.3)  # held through the four later starts, then the quiet time


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
    assert took == pytest.approx(0.1)  # held until the urgent item, no longer


def test_a_batch_with_a_removal_is_never_held() -> None:
    items = [event("start", container=f"c{i}") for i in range(3)] + [event("kill", container="x")]
    batch, _ = collect(items, [(0.5, event("start", container="late"))])
    assert batch == items


def test_a_port_that_opened_is_acted_on_without_debounce() -> None:
    # WAITS debounce for 10 ms; a 1 s debounce shows the port skips it.
    batcher = Batcher(dataclasses.replace(WAITS, debounce_min=1.0, debounce_max=2.0), FakeClock())
    batch, took = collect([READY], [(0.3, event("start", container="later"))], batcher)
    assert batch == [READY]
    assert took == 0  # the later start (0.3 s) was not waited for


def test_what_is_queued_with_a_port_that_opened_comes_along() -> None:
    batch, _ = collect([READY, event("die", container="c9"), READY])
    assert batch == [READY, event("die", container="c9"), READY]


def test_during_a_burst_opened_ports_are_held_like_starts() -> None:
    batcher = Batcher(WAITS, FakeClock())
    starts = [event("start", container=f"c{i}") for i in range(3)]
    collect(starts, batcher=batcher)  # a burst is under way
    batch, took = collect([READY], [(0.1, READY), (0.1, event("start", container="c4"))], batcher)
    assert batch == [READY, READY, event("start", container="c4")]
    assert took == pytest.approx(0.2 + 0.3)  # held through both, then the quiet time


def test_the_debounce_ends_debounce_max_after_the_first_item_however_busy() -> None:
    steady = [(0.004, event("die", container=f"c{i}")) for i in range(40)]
    batch, took = collect([event("die", container="first")], steady)
    assert took == pytest.approx(0.05)
    assert len(batch) == 1 + 12


def test_an_item_after_the_quiet_time_is_left_for_the_next_batch() -> None:
    batch, took = collect([event("die", container="a")], [(0.02, event("die", container="b"))])
    assert batch == [event("die", container="a")]
    assert took == pytest.approx(0.01)


def test_a_burst_is_held_at_most_burst_max() -> None:
    starts = [event("start", container=f"c{i}") for i in range(3)]
    steady = [(0.2, event("start", container=f"d{i}")) for i in range(30)]
    batch, took = collect(starts, steady)
    assert took == pytest.approx(0.01 + 2.0)  # the debounce, then burst_max
    assert len(batch) == 3 + 10


@pytest.mark.parametrize(
    ("resync", "deadline", "batch", "waited"),
    [
        pytest.param(5.0, None, [], 5.0, id="nothing happens: resync after the interval"),
        pytest.param(None, 0.1, [WAKE], 0.11, id="no resync: wake just past the deadline"),
        pytest.param(5.0, 0.1, [WAKE], 0.11, id="a deadline before the resync: wake"),
        pytest.param(0.05, 0.1, [], 0.05, id="the resync comes first"),
        pytest.param(5.0, -1.0, [WAKE], 0.01, id="a deadline already past: wake at once"),
    ],
)
def test_an_empty_wait_ends_in_a_resync_or_a_wake_up(
    resync: float | None, deadline: float | None, batch: list[object], waited: float
) -> None:
    clock = FakeClock()
    at = None if deadline is None else clock.now() + deadline
    assert Batcher(WAITS, clock).collect(Scripted(clock), resync, at) == batch
    assert clock.now() - 1000.0 == pytest.approx(waited)


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
    view = DockerView()
    view.assume(proxy(), [container(name, id=name) for name in (A, B)])
    view.stopping = frozenset(stopping)
    assert view.changed(batch, PROXY_ID) == changed


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
    view = DockerView()
    view.assume(proxy(), [container("shop-web-1", id=A)])
    assert view.changed(batch, PROXY_ID) == changed


def test_before_the_first_list_everything_is_listed() -> None:
    assert DockerView().changed([READY], PROXY_ID) is None


def labelled(action: str, container: str, **labels: str) -> E.Event:
    return E.Event("container", action, container, labels)


@pytest.mark.parametrize(
    ("event_", "scope", "relevant"),
    [
        pytest.param(
            labelled("start", "new", **{"com.docker.compose.project": "shop"}), "project", True, id="ours starts"
        ),
        pytest.param(
            labelled("start", "new", **{"com.docker.compose.project": "other"}),
            "project",
            False,
            id="another project's start: no wake-up, no burst",
        ),
        pytest.param(
            labelled("start", "new", **{"dynamic-nginx.enable": "true"}), "all", True, id="opted in, scope all"
        ),
        pytest.param(
            labelled("start", "new", **{"dynamic-nginx.enable": "true"}), "project", False, id="opted in, scope project"
        ),
        pytest.param(labelled("die", A), "project", True, id="a listed container, whatever its labels say"),
        pytest.param(event("connect", "network", container=A), "project", True, id="a listed one's network"),
        pytest.param(event("connect", "network", container="new"), "project", False, id="an unlisted one's network"),
        pytest.param(event("disconnect", "network", container="proxy"), "project", True, id="the proxy's network"),
    ],
)
def test_events_about_containers_never_served_are_dropped(event_: E.Event, scope: str, relevant: bool) -> None:
    view = DockerView(opted_in=scope == "all")
    view.assume(proxy(id="proxy"), [container("shop-web-1", id=A)])
    assert view.relevant(event_) is relevant


def test_before_the_first_list_every_event_is_relevant() -> None:
    assert DockerView().relevant(labelled("start", "new", **{"com.docker.compose.project": "other"}))
