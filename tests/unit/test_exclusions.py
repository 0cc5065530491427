"""Model.excluded: every container build was given and serves in no upstream, with a machine-readable reason.

Also the two inputs that replaced rewritten container states: `leaving` and
`pending` id sets, and readiness asked once inside the single build.
"""

from __future__ import annotations

from collections.abc import Collection

import pytest
from dynamic_nginx import model
from dynamic_nginx.exclusions import EXCLUSION_REASONS
from dynamic_nginx.model import Container, Server
from support import NETWORK, container, members, proxy

P = "dynamic-nginx."
WEB = container("shop-web-1")
API = container("shop-api-1", service="api", ip="172.18.0.3")


def reason_of(built: model.Model, name: str) -> str | None:
    found = [e.reason for e in built.excluded if e.container == name]
    assert len(found) <= 1, found
    return found[0] if found else None


@pytest.mark.parametrize(
    ("target", "others", "options", "reason"),
    [
        pytest.param(WEB, [], {}, None, id="served: no exclusion"),
        pytest.param(container("other-web-1", project="other"), [], {}, "out_of_scope", id="another project"),
        pytest.param(container("shop-web-run", oneoff="True"), [], {}, "out_of_scope", id="a compose run container"),
        pytest.param(container(state="paused"), [], {}, "not_running", id="paused"),
        pytest.param(container(state="paused"), [], {"leaving": {WEB.id}}, "not_running", id="paused and leaving"),
        pytest.param(WEB, [], {"leaving": {WEB.id}}, "stopping", id="signalled to stop"),
        pytest.param(WEB, [], {"pending": {WEB.id}}, "starting", id="held back"),
        pytest.param(WEB, [], {"unready": lambda servers: {WEB.id}}, "starting", id="port not accepting yet"),
        pytest.param(container(health="starting"), [], {}, "health_starting", id="health check not passed yet"),
        pytest.param(container(health="unhealthy"), [], {}, "unhealthy", id="unhealthy"),
        pytest.param(
            container(health="unhealthy", labels={P + "health_gating": "false"}), [], {}, None, id="opted out of gating"
        ),
        pytest.param(container(labels={P + "enable": "false"}), [], {}, "disabled_by_label", id="enable=false"),
        pytest.param(
            container(labels={P + "weight": "heavy"}), [], {}, "label_invalid:dynamic-nginx.weight", id="a bad label"
        ),
        pytest.param(
            container(networks={"elsewhere": "10.0.0.2"}), [], {}, "no_shared_network", id="no shared network"
        ),
        pytest.param(
            container(labels={P + "network": "elsewhere"}), [], {}, "no_shared_network", id="network label not shared"
        ),
        pytest.param(container(networks={NETWORK: "fd00::2"}), [], {}, "no_ipv4_address", id="IPv6 only"),
        pytest.param(container(exposed=(8000, 9000)), [], {}, "port_ambiguous", id="several ports, none 80"),
        pytest.param(
            container(labels={P + "upstream": "api"}),
            [API],
            {},
            "upstream_owned_by:api",
            id="another service's upstream",
        ),
        pytest.param(
            container("lone-1", project="other", labels={P + "enable": "true"}),
            [],
            {"scope": "all"},
            "upstream_not_named",
            id="outside the project without naming an upstream",
        ),
        pytest.param(
            container("shop-web-2", labels={P + "backup": "true", P + "lb": "ip_hash"}),
            [container(labels={P + "lb": "ip_hash"})],
            {},
            "backup_with_lb",
            id="backup with ip_hash",
        ),
        pytest.param(
            WEB,
            [],
            {"extra_upstreams": [f"x{i}.upstream" for i in range(model.MAX_UPSTREAMS)]},
            "too_many_upstreams",
            id="its upstream beyond the cap",
        ),
    ],
)
def test_exclusion_reasons(
    target: Container, others: list[Container], options: dict[str, object], reason: str | None
) -> None:
    built = model.build([target, *others], proxy(), **options)  # type: ignore[arg-type]
    assert reason_of(built, target.name) == reason
    served = {s.container.id for u in built.upstreams for s in u.servers}
    assert (target.id in served) is (reason is None)
    if reason is not None:
        (exclusion,) = [e for e in built.excluded if e.container == target.name]
        assert (exclusion.id, exclusion.service, exclusion.project) == (target.id, target.service, target.project)
        assert exclusion.detail and "\n" not in exclusion.detail
        assert any(reason == r or (r.endswith(":") and reason.startswith(r)) for r in EXCLUSION_REASONS), reason


def test_a_logged_exclusion_carries_its_problem_line_as_detail() -> None:
    built = model.build([container(exposed=(8000, 9000))], proxy())
    assert [e.detail for e in built.excluded] == list(built.problems)


def test_the_proxy_itself_is_not_listed_as_excluded() -> None:
    me = container("shop-proxy-1", service="proxy", id=proxy().id)
    assert model.build([me, WEB], proxy()).excluded == ()


def test_a_container_refused_one_upstream_but_serving_another_is_not_excluded() -> None:
    both = container(labels={P + "port": "80", P + "api.port": "81"})
    built = model.build([both, API], proxy())
    assert members(built)["web.upstream"] == ["shop-web-1"]
    assert built.problems and built.excluded == ()


def test_every_container_is_served_or_excluded_once() -> None:
    made = [
        WEB,
        API,
        container("shop-web-2", state="exited"),
        container("shop-web-3", health="starting"),
        container("other-x-1", project="other"),
        container("shop-bad-1", service="bad", labels={P + "port": "0"}),
    ]
    built = model.build(made, proxy(), leaving={API.id})
    served = {s.container.name for u in built.upstreams for s in u.servers}
    excluded = [e.container for e in built.excluded]
    assert not served & set(excluded)
    assert set(served) | set(excluded) == {c.name for c in made}
    assert len(excluded) == len(set(excluded))


def test_readiness_is_asked_once_about_the_joining_servers_and_a_waiting_one_keeps_its_upstream() -> None:
    asked: list[list[str]] = []

    def unready(servers: Collection[Server]) -> set[str]:
        asked.append(sorted(s.address for s in servers))
        return {API.id}

    checked = container("shop-web-2", health="healthy", ip="172.18.0.4")
    built = model.build([WEB, API, checked], proxy(), unready=unready)
    assert asked == [["172.18.0.2:80", "172.18.0.3:80"]], "asked once; containers with a health check are not probed"
    assert members(built) == {"api.upstream": [], "web.upstream": ["shop-web-1", "shop-web-2"]}
    assert [c.name for c in built.containers] == ["shop-web-1", "shop-web-2"]


def test_leaving_and_pending_leave_a_stub_upstream_and_no_problem() -> None:
    built = model.build([WEB, API], proxy(), leaving={WEB.id}, pending={API.id})
    assert members(built) == {"api.upstream": [], "web.upstream": []}
    assert built.problems == ()
    assert [(e.container, e.reason) for e in built.excluded] == [("shop-api-1", "starting"), ("shop-web-1", "stopping")]


def test_labels_are_decoded_once_per_container_object() -> None:
    web = container(labels={P + "weight": "2"})
    first = web.decoded
    model.build([web], proxy())
    model.build([web], proxy(), leaving={web.id})
    assert web.decoded is first
    assert first.ours is not None and first.ours.memberships[0].server.weight == 2


@pytest.mark.parametrize(
    ("labels", "networks", "outcome"),
    [
        pytest.param({P + "weight": "2"}, (NETWORK,), "members", id="served: its servers"),
        pytest.param({P + "weight": "two"}, (NETWORK,), "LabelError", id="a bad label: the same error"),
        pytest.param({}, ("elsewhere",), "Excluded", id="no shared network: the same exclusion"),
    ],
)
def test_members_are_worked_out_once_per_container_object(
    monkeypatch: pytest.MonkeyPatch, labels: dict[str, str], networks: tuple[str, ...], outcome: str
) -> None:
    web = container(labels=labels)
    ours = proxy(networks=networks)
    calls = []
    real = model._members
    monkeypatch.setattr(model, "_members", lambda *args: calls.append(args[0].name) or real(*args))

    def members_of(c: Container, p: model.Proxy) -> object:
        try:
            return model.members_of(c, p)
        except Exception as error:
            return type(error).__name__

    answers = [members_of(web, ours) for _ in range(3)]
    assert calls == ["shop-web-1"], "worked out at the first sync only"
    assert answers[0] == answers[1] == answers[2]
    assert (answers[0] if isinstance(answers[0], str) else "members") == outcome
    if isinstance(answers[0], list) and isinstance(answers[1], list):
        assert answers[0][0][1].server is answers[1][0][1].server, "the same Server: unchanged, nothing to compare"
    members_of(web, proxy(networks=(NETWORK, "other")))
    members_of(container(labels=labels), ours)
    assert calls == ["shop-web-1"] * 3, "another proxy, or another container object, is worked out again"
