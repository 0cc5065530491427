"""Health gating: a container with a HEALTHCHECK serves only while healthy, unless it opts out."""

from __future__ import annotations

import pytest
from dynamic_nginx import model
from support import container, members, proxy

OPT_OUT = {"dynamic-nginx.health_gating": "false"}


@pytest.mark.parametrize(
    ("state", "health", "labels", "served"),
    [
        pytest.param("running", None, {}, True, id="no health check: serves once running"),
        pytest.param("running", "starting", {}, False, id="health check still starting"),
        pytest.param("running", "healthy", {}, True, id="healthy"),
        pytest.param("running", "unhealthy", {}, False, id="turned unhealthy"),
        pytest.param("running", "starting", OPT_OUT, True, id="opted out: starting serves"),
        pytest.param("running", "unhealthy", OPT_OUT, True, id="opted out: unhealthy serves"),
        pytest.param("running", "unhealthy", {"dynamic-nginx.health_gating": "yes"}, False, id="explicitly gated"),
        pytest.param("paused", "healthy", OPT_OUT, False, id="paused never serves"),
        pytest.param("stopping", None, OPT_OUT, False, id="a terminating signal was seen"),
        pytest.param("exited", None, {}, False, id="exited"),
    ],
)
def test_who_serves(state: str, health: str | None, labels: dict[str, str], served: bool) -> None:
    built = model.build([container(state=state, health=health, labels=labels)], proxy())
    assert members(built) == {"web.upstream": ["shop-web-1"] if served else []}
    assert built.problems == ()


def test_bad_opt_out_value_is_reported_once_live() -> None:
    built = model.build([container(labels={"dynamic-nginx.health_gating": "maybe"})], proxy())
    assert members(built) == {"web.upstream": []}
    assert "dynamic-nginx.health_gating='maybe' is invalid" in built.problems[0]
