"""events: Docker's event messages as plain data, and which of them mean "on its way out"."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from dynamic_nginx import events as E
from dynamic_nginx.events import Event

WEB_ID = "6a6e1f48a05b4e84c33066ba89863f9d4d8e5291aea380e2e8ff94b8789042d7"
NET_ID = "6e100d7324cc6792f154c66b1ac72c7e0684c533443e97bd20dc5c1edd8b443e"
USR1 = str(int(signal.SIGUSR1))


def message(kind: str, action: str, actor_id: str, **attributes: str) -> dict[str, Any]:
    """A decoded `/events` message shaped as dockerd sends it (API 1.41)."""
    return {
        "status": action,
        "id": actor_id,
        "from": "nginx:1.27",
        "Type": kind,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": dict(attributes)},
        "scope": "local",
        "time": 1764100000,
        "timeNano": 1764100000123456789,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            message("container", "kill", WEB_ID, name="shop-web-1", signal="15"),
            Event("container", "kill", WEB_ID, {"name": "shop-web-1", "signal": "15"}),
            id="container kill carries its signal",
        ),
        pytest.param(
            message("container", "health_status: healthy", WEB_ID, name="shop-web-1"),
            Event("container", "health_status", WEB_ID, {"name": "shop-web-1"}),
            id="health_status: healthy becomes action health_status",
        ),
        pytest.param(
            message("container", "health_status: unhealthy", WEB_ID),
            Event("container", "health_status", WEB_ID, {}),
            id="health_status: unhealthy becomes action health_status",
        ),
        pytest.param(
            message("container", "start", WEB_ID, image="nginx:1.27"),
            Event("container", "start", WEB_ID, {"image": "nginx:1.27"}),
            id="container start",
        ),
        pytest.param(
            message("container", "destroy", WEB_ID),
            Event("container", "destroy", WEB_ID, {}),
            id="container destroy",
        ),
        pytest.param(
            message("network", "connect", NET_ID, container=WEB_ID, name="shop_default", type="bridge"),
            Event("network", "connect", WEB_ID, {"container": WEB_ID, "name": "shop_default", "type": "bridge"}),
            id="network connect names the container, not the network",
        ),
        pytest.param(
            message("network", "disconnect", NET_ID, container=WEB_ID, name="shop_default"),
            Event("network", "disconnect", WEB_ID, {"container": WEB_ID, "name": "shop_default"}),
            id="network disconnect",
        ),
        pytest.param(
            {"Type": "container", "Action": "kill", "Actor": {"ID": WEB_ID, "Attributes": None}},
            Event("container", "kill", WEB_ID, {}),
            id="null attributes",
        ),
        pytest.param(
            {"Type": "container", "Action": "die", "Actor": {"ID": WEB_ID, "Attributes": {"exitCode": 0}}},
            Event("container", "die", WEB_ID, {"exitCode": "0"}),
            id="attribute values become strings",
        ),
        pytest.param(message("container", "exec_start: sh -c true", WEB_ID), None, id="exec_start ignored"),
        pytest.param(message("container", "exec_create: sh -c true", WEB_ID), None, id="exec_create ignored"),
        pytest.param(message("container", "create", WEB_ID), None, id="create ignored (start follows)"),
        pytest.param(message("container", "attach", WEB_ID), None, id="attach ignored"),
        pytest.param(message("image", "pull", "nginx:1.27", name="nginx"), None, id="image pull ignored"),
        pytest.param(message("image", "delete", "sha256:ab12"), None, id="image delete ignored"),
        pytest.param(message("volume", "mount", "data", container=WEB_ID), None, id="volume event ignored"),
        pytest.param(message("network", "create", NET_ID, name="shop_default"), None, id="network create ignored"),
        pytest.param({}, None, id="empty message"),
    ],
)
def test_from_api(raw: dict[str, Any], expected: Event | None) -> None:
    assert E.from_api(raw) == expected


@pytest.mark.parametrize(
    ("text", "number"),
    [
        pytest.param("15", 15, id="number"),
        pytest.param(" 15 ", 15, id="number with spaces"),
        pytest.param("SIGTERM", 15, id="SIG name"),
        pytest.param("TERM", 15, id="bare name"),
        pytest.param("sigterm", 15, id="lower case"),
        pytest.param("KILL", 9, id="KILL"),
        pytest.param("SIGQUIT", int(signal.SIGQUIT), id="QUIT"),
        pytest.param("bogus", None, id="unknown name"),
        pytest.param("", None, id="empty"),
        pytest.param("SIG", None, id="bare prefix"),
        pytest.param("SIG;rm", None, id="punctuation"),
        pytest.param("SIGRTMIN+3", None, id="real-time offset form"),
        pytest.param("__class__", None, id="attribute that is not a signal"),
        pytest.param("²", None, id="superscript digit is not a number"),
    ],
)
def test_signal_number(text: str, number: int | None) -> None:
    assert E.signal_number(text) == number


def kill(signal_attribute: str | None, container_id: str = WEB_ID) -> Event:
    attributes = {} if signal_attribute is None else {"signal": signal_attribute}
    return Event("container", "kill", container_id, attributes)


QUIT, INT, HUP, WINCH, USR2 = (
    str(int(s)) for s in (signal.SIGQUIT, signal.SIGINT, signal.SIGHUP, signal.SIGWINCH, signal.SIGUSR2)
)


@pytest.mark.parametrize(
    ("event", "stop_signal", "terminating"),
    [
        pytest.param(kill("15"), "", True, id="TERM stops a container without a StopSignal"),
        pytest.param(kill("15"), "SIGTERM", True, id="TERM stops a container whose StopSignal is TERM"),
        pytest.param(kill("9"), "", True, id="KILL always stops"),
        pytest.param(kill("9"), "SIGQUIT", True, id="KILL stops whatever the StopSignal"),
        pytest.param(kill(QUIT), "", False, id="QUIT is a thread dump when TERM stops the container"),
        pytest.param(kill(QUIT), "SIGQUIT", True, id="QUIT stops a container whose StopSignal is QUIT (nginx)"),
        pytest.param(kill("15"), "SIGQUIT", False, id="TERM does not stop what Docker stops with QUIT"),
        pytest.param(kill(INT), "", False, id="INT is not how Docker stops it"),
        pytest.param(kill(INT), "SIGINT", True, id="INT as StopSignal"),
        pytest.param(kill(HUP), "", False, id="HUP reloads"),
        pytest.param(kill(HUP), "SIGTERM", False, id="HUP reloads when TERM stops it"),
        pytest.param(kill(USR1), "", False, id="USR1 reopens logs"),
        pytest.param(kill(USR2), "", False, id="USR2"),
        pytest.param(kill(WINCH), "", False, id="WINCH"),
        pytest.param(kill(USR1), "SIGUSR1", True, id="the container's own StopSignal"),
        pytest.param(kill(USR1), "USR1", True, id="StopSignal without SIG"),
        pytest.param(kill(USR1), USR1, True, id="StopSignal as a number"),
        pytest.param(kill(USR1), "bogus", False, id="unknown StopSignal: Docker stops with TERM"),
        pytest.param(kill("15"), "bogus", True, id="TERM with an unknown StopSignal"),
        pytest.param(kill("SIGTERM"), "", True, id="signal attribute as a name"),
        pytest.param(kill(None), "", False, id="no signal attribute"),
        pytest.param(kill("bogus"), "SIGTERM", False, id="unreadable signal"),
        pytest.param(Event("container", "die", WEB_ID, {"signal": "15"}), "", False, id="die is not a kill"),
        pytest.param(Event("network", "kill", WEB_ID, {"signal": "15"}), "", False, id="not a container event"),
    ],
)
def test_is_terminating(event: Event, stop_signal: str, terminating: bool) -> None:
    assert E.is_terminating(event, stop_signal) is terminating


A, B = "a" * 64, "b" * 64


@pytest.mark.parametrize(
    ("before", "event", "stop_signal", "after"),
    [
        pytest.param(frozenset(), kill("15", A), "", {A}, id="terminating kill adds"),
        pytest.param(frozenset({B}), kill("15", A), "", {A, B}, id="adds beside others"),
        pytest.param(frozenset(), kill("1", A), "", set(), id="HUP does not add"),
        pytest.param(frozenset(), kill(QUIT, A), "", set(), id="QUIT (a thread dump) does not add"),
        pytest.param(frozenset(), kill("9", A), "SIGQUIT", {A}, id="KILL adds"),
        pytest.param(frozenset(), kill(USR1, A), "SIGUSR1", {A}, id="kill with its StopSignal adds"),
        pytest.param(frozenset({A, B}), Event("container", "start", A, {}), "", {B}, id="start removes"),
        pytest.param(frozenset({A}), Event("container", "destroy", A, {}), "", set(), id="destroy removes"),
        pytest.param(frozenset({A}), Event("container", "die", A, {}), "", {A}, id="die keeps"),
        pytest.param(frozenset({A}), Event("container", "stop", A, {}), "", {A}, id="stop keeps"),
        pytest.param(
            frozenset({A}),
            Event("network", "disconnect", A, {"container": A}),
            "",
            {A},
            id="network event keeps",
        ),
        pytest.param(frozenset({A}), Event("container", "start", B, {}), "", {A}, id="another's start keeps"),
    ],
)
def test_update_stopping(before: frozenset[str], event: Event, stop_signal: str, after: set[str]) -> None:
    assert E.update_stopping(before, event, stop_signal) == after


@pytest.mark.parametrize(
    ("event", "stopping", "changes"),
    [
        pytest.param(kill("15", A), {A}, False, id="a terminating kill: Docker still says running"),
        pytest.param(kill("1", A), set(), False, id="a HUP: nothing changes at all"),
        pytest.param(Event("container", "die", A, {}), {A}, False, id="a stopping container dies: out already"),
        pytest.param(Event("container", "stop", A, {}), {A}, False, id="a stopping container's stop"),
        pytest.param(Event("network", "disconnect", A, {"container": A}), {A}, False, id="its disconnect"),
        pytest.param(Event("container", "die", A, {}), set(), True, id="a crash (die without a kill)"),
        pytest.param(Event("container", "die", A, {}), {B}, True, id="another container's die"),
        pytest.param(Event("network", "disconnect", A, {"container": A}), set(), True, id="a live disconnect"),
        pytest.param(Event("container", "destroy", A, {}), set(), False, id="a destroy: dropped from the last list"),
        pytest.param(Event("container", "start", A, {}), set(), True, id="a start"),
        pytest.param(Event("container", "pause", A, {}), {A}, True, id="a pause"),
        pytest.param(Event("container", "health_status", A, {}), set(), True, id="a health change"),
        pytest.param(Event("network", "connect", A, {"container": A}), set(), True, id="a connect"),
    ],
)
def test_changes_listing(event: Event, stopping: set[str], changes: bool) -> None:
    assert E.changes_listing(event, frozenset(stopping)) is changes
