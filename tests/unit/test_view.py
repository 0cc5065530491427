"""The Docker view's refresh rule: what each batch asks of Docker, against a fake source and a fake clock."""

from __future__ import annotations

from collections.abc import Collection, Iterable

import pytest
from dynamic_nginx import events as E
from dynamic_nginx.batching import READY
from dynamic_nginx.model import Container, Proxy
from dynamic_nginx.view import Ask, DockerView
from fake_clock import FakeClock
from support import PROXY_ID, container, proxy

A, B = "a" * 64, "b" * 64
WEB = container("shop-web-1", id=A)


class FakeSource:
    """A view's Docker source that records the questions it is asked."""

    def __init__(self, containers: list[Container]):
        self.listed = containers
        self.calls: list[str] = []

    def proxy(self, proxy_id: str) -> Proxy:
        self.calls.append("inspect proxy")
        return proxy()

    def containers(self, project: str, opted_in: bool = False) -> list[Container]:
        self.calls.append("list")
        return list(self.listed)

    def services(self, project: str) -> set[str]:
        self.calls.append("list all")
        return {c.service for c in self.listed}

    def refresh(
        self, listed: Iterable[Container], ids: Collection[str], project: str, opted_in: bool = False
    ) -> list[Container]:
        self.calls.extend(f"inspect {i[:1]}" for i in sorted(ids))
        return [c for c in listed if c.id not in ids] + [c for c in self.listed if c.id in ids]

    def stop_signal(self, container_id: str) -> str:
        return ""

    def forget(self, container_id: str) -> None:
        pass


@pytest.mark.parametrize(
    ("ask", "calls"),
    [
        pytest.param(None, ["inspect proxy", "list", "list all"], id="list: the proxy, its containers, all services"),
        pytest.param(set(), [], id="nothing: Docker's last answer"),
        pytest.param({A}, ["inspect a"], id="one changed: one inspect"),
    ],
)
def test_what_refresh_asks_docker(ask: Ask, calls: list[str]) -> None:
    view = DockerView()
    view.assume(proxy(), [WEB])
    source = FakeSource([WEB])
    answer = view.refresh(source, PROXY_ID, ask)
    assert source.calls == calls
    assert answer.containers == [WEB] and view.last == answer


def test_before_any_answer_refresh_lists_whatever_is_asked() -> None:
    source = FakeSource([WEB])
    DockerView().refresh(source, PROXY_ID, set())
    assert source.calls == ["inspect proxy", "list", "list all"]


def test_the_project_setting_overrides_the_proxys_own() -> None:
    answer = DockerView(project="other").refresh(FakeSource([]), PROXY_ID)
    assert answer.proxy.project == "other"


def test_a_destroyed_container_leaves_the_last_answer_without_asking() -> None:
    view = DockerView()
    view.assume(proxy(), [WEB, container("shop-web-2", id=B)])
    view.apply(FakeSource([]), E.Event("container", "destroy", B, {}))
    assert view.last is not None and [c.id for c in view.last.containers] == [A]


def start(container_id: str) -> E.Event:
    return E.Event("container", "start", container_id, {})


@pytest.mark.parametrize(
    ("batch", "elapsed", "expected"),
    [
        pytest.param([start(A)], 1.0, {A}, id="a start long before the resync: inspect it"),
        pytest.param([start(A)], 15.0, {A}, id="a resync due: a start still does not wait for a list"),
        pytest.param([start(A)], 25.0, None, id="twice the interval: list anyway"),
        pytest.param([object()], 15.0, None, id="a batch that lists anyway takes the due resync along"),
        pytest.param([READY], 5.0, set(), id="a port opened: nothing"),
        pytest.param([], 1.0, None, id="an empty batch is the resync itself"),
    ],
)
def test_when_a_periodic_resync_lists(batch: list[object], elapsed: float, expected: Ask) -> None:
    clock = FakeClock()
    view = DockerView(clock=clock)
    view.assume(proxy(), [WEB])
    clock.advance(elapsed)
    assert view.ask(batch, PROXY_ID, resync=10.0) == (expected, {})


def test_a_resync_restarts_the_interval() -> None:
    clock = FakeClock()
    view = DockerView(clock=clock)
    view.assume(proxy(), [WEB])
    clock.advance(25.0)
    assert view.ask([start(A)], PROXY_ID, resync=10.0)[0] is None
    clock.advance(1.0)
    assert view.ask([start(A)], PROXY_ID, resync=10.0)[0] == {A}
