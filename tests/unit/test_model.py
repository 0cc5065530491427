"""model: containers in, `<service>.upstream` blocks out, with one log line per left-out container."""

from __future__ import annotations

import pytest
from dynamic_nginx import model
from dynamic_nginx.model import Container, Proxy
from support import PROXY_ID, container, members, proxy

PORT_LABEL = "dynamic-nginx.port"


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        pytest.param([], {}, id="no containers, no upstreams"),
        pytest.param(
            [container("shop-web-1")],
            {"web.upstream": ["shop-web-1"]},
            id="a service becomes <service>.upstream",
        ),
        pytest.param(
            [container("shop-web-1", number=1), container("shop-web-2", number=2)],
            {"web.upstream": ["shop-web-1", "shop-web-2"]},
            id="replicas of one service share one upstream",
        ),
        pytest.param(
            [container("shop-web-1", service="web"), container("shop-api-1", service="api")],
            {"api.upstream": ["shop-api-1"], "web.upstream": ["shop-web-1"]},
            id="one upstream per service, sorted by name",
        ),
        pytest.param(
            [container("shop-Web-1", service="Web")],
            {"web.upstream": ["shop-Web-1"]},
            id="upstream name is lower-cased",
        ),
        pytest.param(
            [container("a-1", service="WEB"), container("b-1", service="web")],
            {"web.upstream": ["a-1", "b-1"]},
            id="services differing only in case share one upstream",
        ),
        pytest.param(
            [container("shop-web-10", number=10), container("shop-web-2", number=2)],
            {"web.upstream": ["shop-web-2", "shop-web-10"]},
            id="servers sorted by container-number, not by name",
        ),
        pytest.param(
            [container("shop-web-b", number=1), container("shop-web-a", number=1)],
            {"web.upstream": ["shop-web-a", "shop-web-b"]},
            id="equal container-numbers fall back to name order",
        ),
        pytest.param(
            [container("shop-web-a", number=1), container("shop-web-z", number=None)],
            {"web.upstream": ["shop-web-z", "shop-web-a"]},
            id="a missing container-number sorts first",
        ),
        pytest.param(
            [container("shop-web-a", number=1), container("shop-web-z", number="x")],
            {"web.upstream": ["shop-web-z", "shop-web-a"]},
            id="a non-numeric container-number sorts first",
        ),
        pytest.param(
            [container("shop-web-a", number=1), container("shop-web-z", number="²")],
            {"web.upstream": ["shop-web-z", "shop-web-a"]},
            id="a non-ASCII digit container-number sorts first instead of failing the build",
        ),
    ],
)
def test_grouping_and_order(containers: list[Container], expected: dict[str, list[str]]) -> None:
    built = model.build(containers, proxy())
    assert members(built) == expected
    assert built.problems == ()


def test_input_order_does_not_matter() -> None:
    containers = [
        container("shop-web-3", number=3, ip="172.18.0.4"),
        container("shop-api-1", service="api", ip="172.18.0.5"),
        container("shop-web-1", number=1, ip="172.18.0.2"),
        container("shop-web-2", number=2, ip="172.18.0.3"),
    ]
    assert model.build(containers, proxy()) == model.build(list(reversed(containers)), proxy())


def test_model_lists_included_containers_by_name() -> None:
    web, paused, api = (
        container("shop-web-1"),
        container("shop-web-2", state="paused"),
        container("shop-api-1", service="api"),
    )
    built = model.build([web, paused, api], proxy())
    assert built.containers == (api, web)
    assert built.proxy == proxy()


@pytest.mark.parametrize(
    ("candidate", "the_proxy"),
    [
        pytest.param(container(project="other"), proxy(), id="another compose project"),
        pytest.param(container(project=None), proxy(), id="no compose project label"),
        pytest.param(container(oneoff="True"), proxy(), id="one-off `compose run` container"),
        pytest.param(container(id=PROXY_ID, service="proxy"), proxy(), id="the proxy itself"),
        pytest.param(container(project=""), proxy(project=""), id="proxy outside any compose project"),
    ],
)
def test_out_of_scope_containers_are_ignored_silently(candidate: Container, the_proxy: Proxy) -> None:
    built = model.build([candidate], the_proxy)
    assert built.upstreams == ()
    assert built.containers == ()
    assert built.problems == ()


@pytest.mark.parametrize(
    "candidate",
    [
        pytest.param(container(service=None), id="no compose service label"),
        pytest.param(container(service=""), id="empty compose service label"),
    ],
)
def test_project_container_without_service_needs_an_upstream_label(candidate: Container) -> None:
    built = model.build([candidate], proxy())
    assert built.upstreams == ()
    assert built.problems == (
        "container shop-web-1: it has no compose service, so it needs the label "
        "dynamic-nginx.upstream=<name> to be served; left out",
    )


def test_oneoff_false_is_in_scope() -> None:
    assert members(model.build([container(oneoff="False")], proxy())) == {"web.upstream": ["shop-web-1"]}


@pytest.mark.parametrize(
    ("state", "health", "served"),
    [
        pytest.param("running", None, True, id="running without health check"),
        pytest.param("running", "healthy", True, id="running and healthy"),
        pytest.param("running", "starting", False, id="health check still starting"),
        pytest.param("running", "unhealthy", False, id="unhealthy"),
        pytest.param("paused", None, False, id="paused"),
        pytest.param("stopping", None, False, id="got a terminating signal"),
        pytest.param("restarting", None, False, id="restarting"),
        pytest.param("exited", None, False, id="exited"),
    ],
)
def test_liveness(state: str, health: str | None, served: bool) -> None:
    built = model.build([container("shop-web-1", state=state, health=health)], proxy())
    # A service whose containers are all down keeps its upstream, so config that refers to it still loads.
    assert members(built) == {"web.upstream": ["shop-web-1"] if served else []}
    assert built.problems == ()


@pytest.mark.parametrize(
    ("labels", "exposed", "port"),
    [
        pytest.param({}, (), 80, id="nothing exposed: 80"),
        pytest.param({}, (8000,), 8000, id="the single exposed port"),
        pytest.param({}, (8000, 8000), 8000, id="one port listed twice is still single"),
        pytest.param({}, (8000, 80, 9090), 80, id="several exposed including 80: 80"),
        pytest.param({PORT_LABEL: "8080"}, (8000, 9090), 8080, id="label beats several exposed"),
        pytest.param({PORT_LABEL: "8080"}, (8000,), 8080, id="label beats a single exposed"),
        pytest.param({PORT_LABEL: "1"}, (), 1, id="label at the lowest port"),
        pytest.param({PORT_LABEL: "65535"}, (), 65535, id="label at the highest port"),
    ],
)
def test_port_choice(labels: dict[str, str], exposed: tuple[int, ...], port: int) -> None:
    built = model.build([container(labels=labels, exposed=exposed, ip="172.18.0.7")], proxy())
    (server,) = built.upstreams[0].servers
    assert (server.port, server.address) == (port, f"172.18.0.7:{port}")


def test_several_exposed_ports_without_80_is_left_out_with_advice() -> None:
    built = model.build([container("shop-web-1", exposed=(9090, 8000))], proxy())
    assert members(built) == {"web.upstream": []}
    (problem,) = built.problems
    assert problem.startswith("container shop-web-1: ")
    assert "8000, 9090" in problem
    assert f"{PORT_LABEL}=<port>" in problem


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0", id="zero"),
        pytest.param("65536", id="above 65535"),
        pytest.param("80;", id="semicolon"),
        pytest.param("8 0", id="inner space"),
        pytest.param("", id="empty"),
        pytest.param("١٢٣", id="unicode digits"),
        pytest.param("99999999999999999999", id="huge number"),
        pytest.param("80\n}", id="newline and brace"),
    ],
)
def test_bad_port_label_leaves_only_that_container_out(value: str) -> None:
    bad = container("shop-web-1", number=1, labels={PORT_LABEL: value}, ip="172.18.0.2")
    good = container("shop-web-2", number=2, ip="172.18.0.3")
    built = model.build([bad, good], proxy())
    assert members(built) == {"web.upstream": ["shop-web-2"]}
    (problem,) = built.problems
    assert problem.startswith("container shop-web-1: ")
    assert f"{PORT_LABEL}={value!r}" in problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    ("networks", "proxy_networks", "chosen"),
    [
        pytest.param(
            {"shop_default": "172.18.0.2"}, ("shop_default",), ("shop_default", "172.18.0.2"), id="one shared"
        ),
        pytest.param(
            {"shop_front": "172.19.0.2", "shop_back": "172.20.0.2"},
            ("shop_back", "shop_front"),
            ("shop_back", "172.20.0.2"),
            id="several shared: first by name",
        ),
        pytest.param(
            {"shop_back": "172.20.0.2", "shop_front": "172.19.0.2"},
            ("shop_front", "shop_back"),
            ("shop_back", "172.20.0.2"),
            id="several shared: API map order does not matter",
        ),
        pytest.param(
            {"other": "10.0.0.2", "shop_front": "172.19.0.2"},
            ("shop_front", "shop_back"),
            ("shop_front", "172.19.0.2"),
            id="the one shared among several",
        ),
        pytest.param(
            {"shop_back": "", "shop_front": "172.19.0.2"},
            ("shop_back", "shop_front"),
            ("shop_front", "172.19.0.2"),
            id="first shared has no address: next shared",
        ),
    ],
)
def test_network_choice(networks: dict[str, str], proxy_networks: tuple[str, ...], chosen: tuple[str, str]) -> None:
    built = model.build([container(networks=networks)], proxy(networks=proxy_networks))
    (server,) = built.upstreams[0].servers
    assert (server.network, server.address) == (chosen[0], f"{chosen[1]}:80")


@pytest.mark.parametrize(
    ("networks", "says"),
    [
        pytest.param({"other_default": "10.0.0.2"}, "shares no network with the proxy", id="no shared network"),
        pytest.param({}, "shares no network with the proxy (it is on no network", id="on no network at all"),
        pytest.param({"shop_default": ""}, "no IPv4 address on shared network(s) shop_default", id="empty IP"),
    ],
)
def test_unreachable_container_is_left_out_with_a_message(networks: dict[str, str], says: str) -> None:
    built = model.build([container("shop-web-1", networks=networks)], proxy())
    assert members(built) == {"web.upstream": []}
    (problem,) = built.problems
    assert problem.startswith("container shop-web-1: ")
    assert says in problem


def test_no_shared_network_message_names_both_sides() -> None:
    built = model.build(
        [container("shop-web-1", networks={"b_net": "10.0.0.2", "a_net": "10.0.1.2"})],
        proxy(networks=("shop_default",)),
    )
    (problem,) = built.problems
    assert problem == (
        "container shop-web-1: shares no network with the proxy (it is on a_net, b_net; "
        "the proxy on shop_default); left out. Put both on one network."
    )


@pytest.mark.parametrize(
    ("containers", "extra", "expected"),
    [
        pytest.param([], ["api.upstream"], {"api.upstream": []}, id="extra name gives an empty upstream"),
        pytest.param([], ["API.Upstream"], {"api.upstream": []}, id="extra name is lower-cased"),
        pytest.param([], ["b.upstream", "a.upstream"], {"a.upstream": [], "b.upstream": []}, id="sorted by name"),
        pytest.param(
            [container("shop-web-1")],
            ["web.upstream"],
            {"web.upstream": ["shop-web-1"]},
            id="extra name of a served upstream keeps its servers",
        ),
        pytest.param(
            [],
            ["bad name.upstream", "x;y.upstream", "z}.upstream", ""],
            {},
            id="extra names that are not names are dropped",
        ),
    ],
)
def test_extra_upstreams(containers: list[Container], extra: list[str], expected: dict[str, list[str]]) -> None:
    assert members(model.build(containers, proxy(), extra)) == expected


@pytest.mark.parametrize(
    "service",
    [
        pytest.param("web;}", id="semicolon and brace"),
        pytest.param("we b", id="space"),
        pytest.param("web{", id="brace"),
        pytest.param('we"b', id="quote"),
        pytest.param("we\nb", id="newline"),
        pytest.param("wéb", id="accented letter"),
        pytest.param("-web", id="leading hyphen"),
    ],
)
@pytest.mark.parametrize("state", ["running", "paused"])
def test_service_name_that_cannot_name_an_upstream_never_reaches_the_model(service: str, state: str) -> None:
    built = model.build([container("shop-odd-1", service=service, state=state)], proxy())
    assert built.upstreams == ()
    if state == "running":
        (problem,) = built.problems
        assert problem.startswith("container shop-odd-1: label com.docker.compose.service=")
        assert repr(service) in problem
        assert "\n" not in problem


def test_problems_are_one_line_each_naming_the_container() -> None:
    containers = [
        container("shop-a-1", service="a", labels={PORT_LABEL: "80\n;"}),
        container("shop-b-1", service="b", exposed=(8000, 9000)),
        container("shop-c-1", service="c", networks={"elsewhere": "10.0.0.2"}),
        container("shop-d-1", service="d", networks={"shop_default": ""}),
        container("shop-e-1", service="e\n{"),
        container("shop-f-1", service="f"),
    ]
    built = model.build(containers, proxy())
    assert len(built.problems) == 5
    for name, problem in zip(["shop-a-1", "shop-b-1", "shop-c-1", "shop-d-1", "shop-e-1"], built.problems, strict=True):
        assert problem.startswith(f"container {name}: ")
        assert "\n" not in problem
    assert members(built)["f.upstream"] == ["shop-f-1"]


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        pytest.param(["proxy_pass http://web.upstream;"], {"web.upstream"}, id="proxy_pass"),
        pytest.param(["proxy_pass http://web.upstream:8080/;"], {"web.upstream"}, id="followed by a port"),
        pytest.param(["proxy_pass http://web.upstream/api/;"], {"web.upstream"}, id="followed by a path"),
        pytest.param(["# proxy_pass http://old.upstream;"], {"old.upstream"}, id="in a comment"),
        pytest.param(["proxy_pass http://WEB.Upstream;"], {"web.upstream"}, id="upper case is folded"),
        pytest.param(["grpc_pass grpc://api-1.upstream;"], {"api-1.upstream"}, id="grpc_pass, hyphen"),
        pytest.param(["set $u api.v2.upstream;"], {"api.v2.upstream"}, id="dotted service name"),
        pytest.param(
            ["proxy_pass http://a.upstream;\n", "proxy_pass http://b.upstream;"],
            {"a.upstream", "b.upstream"},
            id="union over several texts",
        ),
        pytest.param(["proxy_pass http://web.upstreamx;"], set(), id="longer word after .upstream"),
        pytest.param(["proxy_pass http://web.upstream.example.com;"], set(), id="more domain after .upstream"),
        pytest.param(["proxy_pass http://xweb.upstream;"], {"xweb.upstream"}, id="xweb is not web"),
        pytest.param(["proxy_pass http://_web.upstream;"], set(), id="underscore is part of the word"),
        pytest.param(["proxy_pass http://web..upstream;"], set(), id="empty word is not a name"),
        pytest.param(["upstream .upstream {}"], set(), id="bare suffix"),
        pytest.param(["proxy_pass http://" + "a" * 64 + ".upstream;"], set(), id="word too long for a name"),
        pytest.param(["proxy_pass http://web:8000;"], set(), id="docker DNS name without the suffix"),
    ],
)
def test_referenced_upstreams(texts: list[str], expected: set[str]) -> None:
    assert model.referenced_upstreams(texts) == expected
