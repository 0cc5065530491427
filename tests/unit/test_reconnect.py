"""reconnect: the backoff table, the probing wait, naming a failure, logging an outage once, the stall watchdog."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from dynamic_nginx import reconnect as R


class Clock:
    """A clock that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("rand", "expected"),
    [
        pytest.param(0.0, [0.25, 0.5, 1, 2, 4, 8, 15, 15, 15], id="lowest jitter: half of each step"),
        pytest.param(1.0, [0.5, 1, 2, 4, 8, 16, 30, 30, 30], id="highest jitter: the step, capped at 30 s"),
        pytest.param(0.5, [0.375, 0.75, 1.5, 3, 6, 12, 22.5, 22.5, 22.5], id="middle"),
    ],
)
def test_backoff_table(rand: float, expected: list[float]) -> None:
    backoff = R.Backoff(rand=lambda: rand)
    assert [backoff.next() for _ in expected] == pytest.approx(expected)


def test_backoff_never_gives_up_and_starts_over_after_a_success() -> None:
    backoff = R.Backoff(rand=lambda: 1.0)
    delays = [backoff.next() for _ in range(1000)]
    assert max(delays) == R.BACKOFF_CAP and delays[-1] == R.BACKOFF_CAP
    backoff.reset()
    assert backoff.next() == R.BACKOFF_BASE


@pytest.mark.parametrize(
    ("delay", "answers_after", "expected_return", "expected_waited"),
    [
        pytest.param(30.0, None, False, 30.0, id="Docker stays away: the whole delay"),
        pytest.param(30.0, 2, True, 1.5, id="Docker back: the third probe cuts the wait short"),
        pytest.param(0.2, 0, False, 0.2, id="a delay shorter than a probe period"),
    ],
)
def test_wait_probes_while_backing_off(
    delay: float, answers_after: int | None, expected_return: bool, expected_waited: float
) -> None:
    clock = Clock()
    probes: list[float] = []

    def probe() -> bool:
        probes.append(clock())
        return answers_after is not None and len(probes) > answers_after

    assert R.wait(delay, probe, clock, clock.sleep) is expected_return
    assert sum(clock.slept) == pytest.approx(expected_waited)
    assert max(clock.slept) <= R.PROBE_EVERY


def test_wait_without_a_probe_sleeps_once() -> None:
    clock = Clock()
    assert R.wait(12.0, None, clock, clock.sleep) is False
    assert clock.slept == [12.0]


class ApiLikeError(Exception):
    """As docker-py's APIError: a status_code."""

    def __init__(self, status: int):
        super().__init__(f"{status} Client Error")
        self.status_code = status


def wrapped(inner: BaseException) -> Exception:
    """As docker-py wraps a failed version negotiation: DockerException from requests' ConnectionError
    (an OSError) holding urllib3's ProtocolError, which holds the socket's error."""
    try:
        try:
            raise OSError(Exception("Connection aborted.", inner))
        except OSError as connection:
            raise RuntimeError(f"Error while fetching server API version: {connection}") from connection
    except RuntimeError as error:
        return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(FileNotFoundError(2, "No such file or directory"), R.UNREACHABLE, id="no socket"),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), R.UNREACHABLE, id="nobody listening"),
        pytest.param(wrapped(FileNotFoundError(2, "No such file")), R.UNREACHABLE, id="no socket, via docker-py"),
        pytest.param(wrapped(PermissionError(13, "Permission denied")), R.REFUSED, id="socket permissions"),
        pytest.param(ApiLikeError(403), R.REFUSED, id="a socket proxy's 403"),
        pytest.param(ApiLikeError(400), R.API_ERROR, id="client version too old"),
        pytest.param(ApiLikeError(500), R.API_ERROR, id="server error"),
        pytest.param(TimeoutError("timed out"), R.NOT_ANSWERING, id="timeout"),
        pytest.param(OSError("Read timed out. (read timeout=10)"), R.NOT_ANSWERING, id="requests' read timeout"),
        pytest.param(ValueError("Expecting value"), R.API_ERROR, id="not JSON"),
    ],
)
def test_classify(error: BaseException, expected: str) -> None:
    assert R.classify(error) == expected


def test_an_outage_is_logged_once_and_its_end_with_its_length(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = logging.getLogger("test-outage")
    outage = R.Outage(log, "unix:///var/run/docker.sock", clock)
    with caplog.at_level(logging.INFO, logger="test-outage"):
        for _ in range(5):
            outage.failed(FileNotFoundError(2, "No such file or directory"))
            clock.sleep(2)
        outage.failed(ApiLikeError(403))  # the socket proxy came back, but denies
        outage.recovered()
        outage.recovered()  # a second success logs nothing
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "Docker unreachable at unix:///var/run/docker.sock" in lines[0]
    assert "No such file or directory" in lines[0] and "mounted" in lines[0]
    assert "Docker refused at unix:///var/run/docker.sock" in lines[1]
    assert "after 10.0s (6 failed attempts)" in lines[2]


@pytest.mark.parametrize(
    ("quiet_for", "ping_fails", "expected_pings", "expected_stall"),
    [
        pytest.param(5.0, False, 0, False, id="recent events: no ping"),
        pytest.param(30.5, False, 1, False, id="quiet but Docker answers"),
        pytest.param(30.5, True, 1, True, id="quiet and no answer: stalled"),
    ],
)
def test_watchdog(quiet_for: float, ping_fails: bool, expected_pings: int, expected_stall: bool) -> None:
    clock = Clock()
    pings: list[float] = []
    stalls: list[BaseException] = []

    def ping() -> None:
        pings.append(clock())
        if ping_fails:
            raise TimeoutError("timed out")

    dog = R.Watchdog(ping, stalls.append, quiet=30.0, clock=clock)
    clock.sleep(quiet_for)
    assert dog.check() is expected_stall
    assert len(pings) == expected_pings
    assert bool(stalls) is expected_stall
    if expected_pings and not expected_stall:
        assert dog.check() is False and len(pings) == 1, "an answered ping counts as hearing from Docker"


def test_watchdog_is_told_of_events() -> None:
    clock = Clock()
    calls: list[Callable[[], None]] = []
    dog = R.Watchdog(lambda: calls.append(lambda: None), lambda _: None, quiet=30.0, clock=clock)
    for _ in range(10):
        clock.sleep(20)
        dog.heard()
        assert dog.check() is False
    assert calls == []
