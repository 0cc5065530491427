"""The passive safety net: server parameters the labels leave unset come from settings."""

from __future__ import annotations

import pytest
from dynamic_nginx import labels as L
from dynamic_nginx import model
from support import container, proxy

DEFAULTS = L.ServerOptions(max_fails=1, fail_timeout="1s")


@pytest.mark.parametrize(
    ("labels", "parameters"),
    [
        pytest.param({}, "max_fails=1 fail_timeout=1s", id="defaults fill unset parameters"),
        pytest.param({"dynamic-nginx.max_fails": "0"}, "max_fails=0 fail_timeout=1s", id="a label overrides one"),
        pytest.param(
            {"dynamic-nginx.fail_timeout": "30s", "dynamic-nginx.weight": "2"},
            "weight=2 max_fails=1 fail_timeout=30s",
            id="labels and defaults together",
        ),
        pytest.param(
            {"dynamic-nginx.admin.port": "9000"}, "max_fails=1 fail_timeout=1s", id="named upstreams get them too"
        ),
    ],
)
def test_defaults(labels: dict[str, str], parameters: str) -> None:
    built = model.build([container(labels=labels)], proxy(), defaults=DEFAULTS)
    servers = [s for u in built.upstreams for s in u.servers]
    assert [s.parameters for s in servers] == [parameters]


def test_no_defaults_leave_nginx_defaults() -> None:
    built = model.build([container()], proxy())
    assert built.upstreams[0].servers[0].parameters == ""
