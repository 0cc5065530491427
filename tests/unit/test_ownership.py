"""A container's labels cannot put it into the upstream named after another service."""

from __future__ import annotations

import pytest
from dynamic_nginx import model
from support import container, proxy

WEB = container("shop-web-1", ip="172.18.0.2")
HIJACK = "its labels would put it into web.upstream, which belongs to service web"


@pytest.mark.parametrize(
    ("intruder", "excluded"),
    [
        pytest.param(
            container("shop-evil-1", service="evil", ip="172.18.0.9", labels={"dynamic-nginx.upstream": "web"}),
            True,
            id="explicit upstream name of another service",
        ),
        pytest.param(
            container("shop-evil-1", service="evil", ip="172.18.0.9",
                      labels={"dynamic-nginx.upstream": "WEB.upstream"}),
            True,
            id="same, spelled in upper case with the suffix",
        ),
        pytest.param(
            container("shop-evil-1", service="evil", ip="172.18.0.9", labels={"dynamic-nginx.web.port": "80"}),
            True,
            id="named upstream of another service",
        ),
        pytest.param(
            container("lone", service=None, project=None, ip="172.18.0.9",
                      labels={"dynamic-nginx.enable": "true", "dynamic-nginx.upstream": "web"}),
            True,
            id="opted-in plain container from outside the project",
        ),
        pytest.param(
            container("shop-web-2", ip="172.18.0.3", labels={"dynamic-nginx.upstream": "web"}),
            False,
            id="a replica of web itself may name it",
        ),
        pytest.param(
            container("shop-api-1", service="api", ip="172.18.0.4", labels={"dynamic-nginx.upstream": "pool"}),
            False,
            id="a name no service owns",
        ),
    ],
)
def test_only_a_service_joins_its_own_upstream(intruder, excluded: bool) -> None:
    built = model.build([WEB, intruder], proxy(), scope="all")
    web = next(u for u in built.upstreams if u.name == "web.upstream")
    members = {s.container.name for s in web.servers}
    if excluded:
        assert members == {"shop-web-1"}
        assert len(built.problems) == 1
        assert built.problems[0].startswith(f"container {intruder.name}: {HIJACK}")
    else:
        assert "shop-web-1" in members
        assert built.problems == ()
