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
            container(
                "shop-evil-1", service="evil", ip="172.18.0.9", labels={"dynamic-nginx.upstream": "WEB.upstream"}
            ),
            True,
            id="same, spelled in upper case with the suffix",
        ),
        pytest.param(
            container("shop-evil-1", service="evil", ip="172.18.0.9", labels={"dynamic-nginx.web.port": "80"}),
            True,
            id="named upstream of another service",
        ),
        pytest.param(
            container(
                "lone",
                service=None,
                project=None,
                ip="172.18.0.9",
                labels={"dynamic-nginx.enable": "true", "dynamic-nginx.upstream": "web"},
            ),
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


INTRUDER = container("shop-intruder-1", service="intruder", ip="172.18.0.9", labels={"dynamic-nginx.upstream": "app"})
REFUSED = (
    "container shop-intruder-1: its labels would put it into app.upstream, which belongs to service app of "
    "project shop; only app's containers may join it (even while it has none running). Name another upstream "
    "with dynamic-nginx.upstream; left out of app.upstream"
)


@pytest.mark.parametrize(
    ("others", "services"),
    [
        pytest.param([], ["app"], id="app scaled to 0: known as a service with no container"),
        pytest.param(
            [container("shop-app-1", service="app", state="starting")],
            [],
            id="app's only container is not live yet (force-recreate, first start)",
        ),
        pytest.param(
            [container("shop-app-1", service="app", state="stopping")], [], id="app's last container is stopping"
        ),
        pytest.param([], ["App"], id="service names fold case like upstream names"),
    ],
)
def test_a_service_with_no_live_container_keeps_its_upstream(others, services) -> None:
    built = model.build([INTRUDER, *others], proxy(), ["app.upstream"], services=services)
    assert {u.name: u.servers for u in built.upstreams} == {"app.upstream": ()}  # nginx answers 503
    assert built.problems == (REFUSED,)
    assert built.containers == ()


def test_the_intruder_is_refused_beside_a_running_owner_too() -> None:
    app = container("shop-app-1", service="app", ip="172.18.0.3")
    built = model.build([INTRUDER, app], proxy(), services=["app"])
    assert [s.container.name for s in built.upstreams[0].servers] == ["shop-app-1"]
    assert built.problems == (REFUSED,)


def test_a_refused_name_is_not_kept_as_a_stub_by_the_idle_intruder() -> None:
    idle = container("shop-intruder-1", service="intruder", state="paused", labels={"dynamic-nginx.upstream": "app"})
    assert model.build([idle], proxy(), services=["app"]).upstreams == ()


def other(name: str, service: str | None, project: str | None, **labels: str) -> model.Container:
    return container(
        name,
        service=service,
        project=project,
        ip="172.18.0.40",
        labels={"dynamic-nginx.enable": "true", **{"dynamic-nginx." + k: v for k, v in labels.items()}},
    )


OWNED = "container blog-web-1: its labels would put it into web.upstream, which belongs to service web of project shop"
IMPLICIT = "container blog-web-1: (project blog) it would join web.upstream only by its service name"


@pytest.mark.parametrize(
    ("neighbour", "services", "expected", "problem"),
    [
        pytest.param(
            other("blog-web-1", "web", "blog"),
            [],
            {"web.upstream": ["shop-web-1"]},
            OWNED,
            id="another project's web does not merge into ours by its service name",
        ),
        pytest.param(
            other("blog-api-1", "api", "blog"),
            [],
            {"web.upstream": ["shop-web-1"]},
            IMPLICIT.replace("web", "api"),
            id="nor joins a free name by its service name alone",
        ),
        pytest.param(
            other("blog-web-1", "web", "blog", upstream="web"),
            [],
            {"web.upstream": ["shop-web-1"]},
            OWNED,
            id="nor by naming it",
        ),
        pytest.param(
            other("blog-web-1", "web", "blog", **{"web.port": "80"}),
            [],
            {"web.upstream": ["shop-web-1"]},
            OWNED,
            id="nor by a named upstream label",
        ),
        pytest.param(
            other("blog-web-1", "blog", "blog", upstream="pool"),
            [],
            {"pool.upstream": ["blog-web-1"], "web.upstream": ["shop-web-1"]},
            "",
            id="it joins a name it gives that no service here owns",
        ),
        pytest.param(
            other("lone", None, None, upstream="pool"),
            [],
            {"pool.upstream": ["lone"], "web.upstream": ["shop-web-1"]},
            "",
            id="so does a plain docker run container",
        ),
    ],
)
def test_scope_all_other_projects_join_only_free_names_they_give(neighbour, services, expected, problem) -> None:
    built = model.build([WEB, neighbour], proxy(), scope="all", services=services)
    assert {u.name: [s.container.name for s in u.servers] for u in built.upstreams} == expected
    if problem:
        (line,) = built.problems
        assert line.startswith(problem) and "dynamic-nginx.upstream" in line
    else:
        assert built.problems == ()


def test_scope_all_our_web_at_zero_still_owns_its_name() -> None:
    neighbour = other("blog-web-1", "web", "blog", upstream="web")
    built = model.build([neighbour], proxy(), ["web.upstream"], scope="all", services=["web"])
    assert [(u.name, u.servers) for u in built.upstreams] == [("web.upstream", ())]
    (line,) = built.problems
    assert line.startswith(OWNED)


def test_grouping_services_of_the_project_under_a_free_name_still_works() -> None:
    a = container("shop-a-1", service="a", ip="172.18.0.5", labels={"dynamic-nginx.upstream": "pool"})
    b = container("shop-b-1", service="b", ip="172.18.0.6", labels={"dynamic-nginx.upstream": "pool"})
    built = model.build([a, b], proxy(), services=["a", "b"])
    assert [(u.name, [s.container.name for s in u.servers]) for u in built.upstreams] == [
        ("pool.upstream", ["shop-a-1", "shop-b-1"])
    ]
    assert built.problems == ()
