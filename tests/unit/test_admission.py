"""admission: a replica that survives a stop signal is back after its grace period; a crash-looping one waits."""

from __future__ import annotations

import dataclasses

import pytest
from dynamic_nginx import events as E
from dynamic_nginx.admission import DOCKER_STOP_TIMEOUT, GRACE_MARGIN, Flapping, Hold, Leaving
from dynamic_nginx.batching import WAKE
from dynamic_nginx.view import DockerView
from fake_clock import FakeClock
from support import PROXY_ID, container, proxy

A, B = "a" * 64, "b" * 64


@dataclasses.dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def leaving(clock: Clock) -> Leaving:
    return Leaving(clock, margin=1.0)


@pytest.mark.parametrize(
    ("grace", "after", "due"),
    [
        pytest.param(2.0, 2.9, False, id="within its grace period and the margin: still out"),
        pytest.param(2.0, 3.0, True, id="grace period and margin over: due back"),
        pytest.param(None, DOCKER_STOP_TIMEOUT + 0.9, False, id="no StopTimeout: Docker's default grace applies"),
        pytest.param(None, DOCKER_STOP_TIMEOUT + 1.0, True, id="no StopTimeout: due after Docker's default"),
        pytest.param(0.0, 1.0, True, id="a zero grace period: due after the margin"),
    ],
)
def test_a_replica_is_due_back_after_its_grace_period_and_a_margin(
    grace: float | None, after: float, due: bool
) -> None:
    clock = Clock()
    policy = leaving(clock)
    policy.kill(A, "shop-web-1", "SIGTERM", grace)
    clock.now += after
    assert (A in policy.due()) is due


def test_each_departure_is_due_once() -> None:
    clock = Clock()
    policy = leaving(clock)
    policy.kill(A, "shop-web-1", "SIGTERM", 2.0)
    clock.now += 5
    assert list(policy.due()) == [A]
    assert policy.due() == {}
    assert policy.next_deadline() is None


def test_a_second_stop_signal_restarts_the_clock() -> None:
    """docker stop: SIGTERM, ignored; SIGKILL at the end of the grace period; the replica must not come back."""
    clock = Clock()
    policy = leaving(clock)
    policy.kill(A, "shop-web-1", "SIGTERM", 2.0)
    clock.now += 2.0
    policy.kill(A, "shop-web-1", "SIGKILL", 2.0)
    clock.now += 1.5
    assert policy.due() == {}
    assert policy.next_deadline() == clock.now + 1.5


@pytest.mark.parametrize(
    "action",
    [pytest.param("started again", id="a start ends the wait"), pytest.param("destroyed", id="a destroy ends it")],
)
def test_a_discarded_departure_is_never_due(action: str) -> None:
    clock = Clock()
    policy = leaving(clock)
    policy.kill(A, "shop-web-1", "SIGTERM", 2.0)
    policy.kill(B, "shop-web-2", "SIGTERM", 4.0)
    assert policy.discard(A) is not None
    assert policy.next_deadline() == clock.now + 5.0
    clock.now += 10
    assert list(policy.due()) == [B]


def test_the_departure_says_what_to_log() -> None:
    clock = Clock()
    departure = leaving(clock).kill(A, "shop-web-1", "SIGTERM", None)
    assert (departure.name, departure.signal, departure.grace) == ("shop-web-1", "SIGTERM", DOCKER_STOP_TIMEOUT)


def flapping(clock: Clock) -> Flapping:
    return Flapping(clock, window=30.0, starts=3, hold=2.0, hold_max=8.0)


def starts(policy: Flapping, clock: Clock, every: float, count: int, container: str = A) -> list[Hold | None]:
    holds = []
    for _ in range(count):
        holds.append(policy.started(container))
        clock.now += every
    return holds


@pytest.mark.parametrize(
    ("every", "count", "holds"),
    [
        pytest.param(1.0, 1, [None], id="one start is never held"),
        pytest.param(1.0, 2, [None, None], id="two quick starts are not flapping yet"),
        pytest.param(1.0, 3, [None, None, Hold(2.0, 3, 30.0, True)], id="the third start within the window flaps"),
        pytest.param(
            1.0,
            6,
            [
                None,
                None,
                Hold(2.0, 3, 30.0, True),
                Hold(4.0, 4, 30.0, False),
                Hold(8.0, 5, 30.0, False),
                Hold(8.0, 6, 30.0, False),
            ],
            id="each further start doubles the hold, up to its maximum",
        ),
        pytest.param(16.0, 4, [None, None, None, None], id="starts further apart than the window never flap"),
    ],
)
def test_flapping_starts(every: float, count: int, holds: list[Hold | None]) -> None:
    clock = Clock()
    assert starts(flapping(clock), clock, every, count) == holds


def test_a_flapping_container_is_held_until_it_has_run_its_hold() -> None:
    clock = Clock()
    policy = flapping(clock)
    starts(policy, clock, 1.0, 2)
    policy.started(A)
    assert policy.held([A, B]) == {A}, "held right after the start that made it flapping"
    assert policy.next_deadline() == clock.now + 2.0
    clock.now += 1.9
    assert policy.held([A]) == {A} and policy.released() == []
    clock.now += 0.1
    assert policy.held([A]) == set()
    assert policy.released() == [A]
    assert policy.released() == [], "released once"


def test_a_start_after_the_hold_flaps_again_with_a_longer_hold() -> None:
    clock = Clock()
    policy = flapping(clock)
    starts(policy, clock, 1.0, 3)
    clock.now += 2.0
    assert policy.released() == [A]
    assert policy.started(A) == Hold(4.0, 4, 30.0, True)


def test_a_healthy_replica_beside_a_flapping_one_is_never_held() -> None:
    clock = Clock()
    policy = flapping(clock)
    starts(policy, clock, 0.5, 5, container=A)
    assert policy.started(B) is None
    assert policy.held([A, B]) == {A}


def test_a_destroyed_container_is_forgotten() -> None:
    clock = Clock()
    policy = flapping(clock)
    starts(policy, clock, 0.5, 3)
    policy.forget(A)
    assert policy.held([A]) == set()
    assert policy.next_deadline() is None
    assert policy.started(A) is None, "its history went with it"


class NoDocker:
    """A view's Docker source that knows nothing: no stop signal cached, nothing to forget."""

    def stop_signal(self, container_id: str) -> str:
        return ""

    def forget(self, container_id: str) -> None:
        pass


def test_a_wake_up_alone_asks_docker_nothing() -> None:
    view = DockerView()
    view.assume(proxy())
    assert view.changed([WAKE], PROXY_ID) == set()


def test_the_view_wakes_the_watcher_at_a_grace_deadline_instead_of_the_resync() -> None:
    clock = FakeClock()
    view = DockerView(clock=clock)
    view.assume(proxy(), [dataclasses.replace(container("shop-web-1", id=A), stop_timeout=0.5)])
    view.apply(NoDocker(), kill("15"))
    assert view.next_deadline() == clock.now() + 0.5 + GRACE_MARGIN
    assert view.stopping == {A}


@pytest.mark.parametrize(
    ("state", "logged"),
    [
        pytest.param("running", True, id="Docker still runs it: back in, one line naming it"),
        pytest.param("exited", False, id="it exited meanwhile: nothing to say"),
    ],
)
def test_a_replica_past_its_grace_period_leaves_the_stopping_set(
    state: str, logged: bool, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    view = DockerView(clock=clock)
    view.assume(proxy(), [dataclasses.replace(container("shop-web-1", id=A), stop_timeout=0.0)])
    for event in (kill("15"), E.Event("container", "kill", B, {"signal": "15"})):
        view.apply(NoDocker(), event)
    view.assume(proxy(), [container("shop-web-1", id=A, state=state)])
    clock.advance(GRACE_MARGIN)
    ask, over = view.ask([WAKE], PROXY_ID, resync=60)
    assert set(over) == {A}
    assert ask == {A}, "Docker is asked about it again"
    assert view.stopping == {B}
    with caplog.at_level("INFO", logger="watcher"):
        view.log_back(over)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == (
        ["shop-web-1 still runs 1.0 s after SIGTERM, past its 0 s stop grace period: back in its upstreams"]
        if logged
        else []
    )


def kill(signal: str) -> E.Event:
    return E.Event("container", "kill", A, {"name": "shop-web-1", "signal": signal})


@pytest.mark.parametrize(
    ("events", "stop_signal", "lines"),
    [
        pytest.param(
            [kill("15")],
            "",
            [
                "shop-web-1 received SIGTERM, the signal Docker stops it with: out of its upstreams"
                " (back if Docker still runs it after its 10 s stop grace period)"
            ],
            id="docker stop: one line naming the container and the signal",
        ),
        pytest.param([kill("3")], "", [], id="a thread dump (QUIT): nothing"),
        pytest.param([kill("1")], "", [], id="a reload (HUP): nothing"),
        pytest.param(
            [kill("15"), kill("9")],
            "",
            [
                "shop-web-1 received SIGTERM, the signal Docker stops it with: out of its upstreams"
                " (back if Docker still runs it after its 10 s stop grace period)"
            ],
            id="SIGKILL at the end of the grace period: no second line",
        ),
        pytest.param(
            [kill("15"), E.Event("container", "start", A, {"name": "shop-web-1"})],
            "",
            [
                "shop-web-1 received SIGTERM, the signal Docker stops it with: out of its upstreams"
                " (back if Docker still runs it after its 10 s stop grace period)",
                "shop-web-1 started again: back in its upstreams",
            ],
            id="docker restart: out, then back",
        ),
        pytest.param(
            [E.Event("container", "start", A, {"name": "shop-web-1"})] * 3,
            "",
            ["shop-web-1 is flapping (3 starts within 30 s): it rejoins its upstreams only once it has run 2 s"],
            id="a third start within the window: flapping, once",
        ),
    ],
)
def test_what_the_watcher_logs_about_a_replica(
    events: list[E.Event], stop_signal: str, lines: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    view = DockerView()
    view.assume(proxy(), [container("shop-web-1", id=A, stop_signal=stop_signal)])
    with caplog.at_level("INFO", logger="watcher"):
        for event in events:
            view.apply(NoDocker(), event)
    assert [r.getMessage() for r in caplog.records] == lines
