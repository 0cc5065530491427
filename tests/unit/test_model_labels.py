"""model: what `dynamic-nginx.*` labels do to upstreams: options, conflicts, combinations nginx
rejects, opt-in across projects, network choice, named upstreams, and hostile neighbours."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from dynamic_nginx import model
from dynamic_nginx.model import Container, Model, Upstream
from support import NETWORK, container, members, proxy

P = "dynamic-nginx."
DAY1, DAY2, DAY3 = (f"2026-01-0{day}T00:00:00.000000000Z" for day in (1, 2, 3))


def labelled(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels written without the prefix: {"weight": "3"} -> {"dynamic-nginx.weight": "3"}."""
    return {P + key: value for key, value in labels.items()}


def replica(number: int, created: str = "", state: str = "running", **labels: str) -> Container:
    """Replica `shop-web-<number>` of service web at 172.18.0.<number + 1>."""
    return container(
        f"shop-web-{number}",
        number=number,
        ip=f"172.18.0.{number + 1}",
        created=created,
        state=state,
        labels=labelled(labels),
    )


def upstream(built: Model, name: str = "web.upstream") -> Upstream:
    (found,) = [u for u in built.upstreams if u.name == name]
    return found


def parameters(built: Model, name: str = "web.upstream") -> dict[str, str]:
    """Container name -> its server parameters in the upstream."""
    return {s.container.name: s.parameters for s in upstream(built, name).servers}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({}, "", id="no labels: nginx's defaults"),
        pytest.param({"weight": "3"}, "weight=3", id="weight"),
        pytest.param({"weight": "007"}, "weight=7", id="leading zeros are normalised"),
        pytest.param({"max_fails": "0"}, "max_fails=0", id="max_fails=0 is written, not dropped"),
        pytest.param({"fail_timeout": "1h30m"}, "fail_timeout=1h30m", id="fail_timeout"),
        pytest.param({"max_conns": "100000"}, "max_conns=100000", id="max_conns"),
        pytest.param({"backup": "yes"}, "backup", id="backup"),
        pytest.param({"down": "on"}, "down", id="down"),
        pytest.param({"backup": "false", "down": "0"}, "", id="false booleans write nothing"),
        pytest.param(
            {
                "down": "1",
                "max_conns": "10",
                "backup": "TRUE",
                "fail_timeout": "30",
                "max_fails": "2",
                "weight": "5",
            },
            "weight=5 max_fails=2 fail_timeout=30 max_conns=10 backup down",
            id="all of them, in a fixed order",
        ),
    ],
)
def test_server_parameters_from_labels(labels: dict[str, str], expected: str) -> None:
    # A plain primary beside it, so a lone backup is not promoted.
    built = model.build([replica(1, **labels), replica(2)], proxy())
    assert parameters(built) == {"shop-web-1": expected, "shop-web-2": ""}
    assert built.problems == () and built.warnings == ()


@pytest.mark.parametrize(
    ("labels", "lb", "keepalive"),
    [
        pytest.param({}, "", (None, None, None), id="nothing set"),
        pytest.param({"lb": "round_robin"}, "", (None, None, None), id="round_robin writes no directive"),
        pytest.param({"lb": "least_conn"}, "least_conn", (None, None, None), id="least_conn"),
        pytest.param({"lb": "ip_hash"}, "ip_hash", (None, None, None), id="ip_hash"),
        pytest.param({"lb": "hash $remote_addr consistent"}, "hash $remote_addr consistent", (None,) * 3, id="hash"),
        pytest.param({"lb": "random two least_conn"}, "random two least_conn", (None,) * 3, id="random"),
        pytest.param(
            {"keepalive": "16", "keepalive_timeout": "60s", "keepalive_requests": "1000"},
            "",
            (16, "60s", 1000),
            id="keepalive trio",
        ),
    ],
)
def test_upstream_options_from_labels(
    labels: dict[str, str], lb: str, keepalive: tuple[int | None, str | None, int | None]
) -> None:
    built = model.build([replica(1, **labels), replica(2, **labels)], proxy())
    web = upstream(built)
    assert web.lb == lb
    assert (web.keepalive, web.keepalive_timeout, web.keepalive_requests) == keepalive
    assert built.warnings == ()


def test_conflicting_options_newest_container_wins_and_a_warning_names_them_all() -> None:
    containers = [
        replica(1, DAY1, lb="least_conn", keepalive="8"),
        replica(2, DAY3, lb="ip_hash", keepalive="8"),
        replica(3, DAY2, keepalive="8"),
    ]
    built = model.build(containers, proxy())
    assert upstream(built).lb == "ip_hash"
    assert upstream(built).keepalive == 8
    assert built.warnings == (
        (
            "upstream web.upstream: replicas disagree on dynamic-nginx.lb (shop-web-1: least_conn; "
            "shop-web-2: ip_hash; shop-web-3: round_robin); using shop-web-2's, the newest container's"
        ),
    )
    assert members(built) == {"web.upstream": ["shop-web-1", "shop-web-2", "shop-web-3"]}
    assert built.problems == ()
    assert model.build(list(reversed(containers)), proxy()) == built


def test_a_conflict_between_both_kinds_of_label_names_both() -> None:
    pool = container(
        "shop-api-1",
        service="api",
        ip="172.18.0.9",
        created=DAY2,
        labels=labelled({"upstream": "pool", "lb": "least_conn"}),
    )
    built = model.build([replica(1, DAY1, **{"pool.port": "8000", "pool.lb": "ip_hash"}), pool], proxy())
    assert [w.split(" (")[0] for w in built.warnings] == [
        "upstream pool.upstream: replicas disagree on dynamic-nginx.lb / dynamic-nginx.pool.lb"
    ]


def test_round_robin_and_unset_lb_agree() -> None:
    built = model.build([replica(1, DAY1, lb="round_robin"), replica(2, DAY2)], proxy())
    assert built.warnings == ()
    assert upstream(built).lb == ""


def test_the_newest_container_wins_even_when_it_unsets_an_option() -> None:
    built = model.build([replica(1, DAY1, keepalive="32"), replica(2, DAY2)], proxy())
    assert upstream(built).keepalive is None
    assert built.warnings == (
        (
            "upstream web.upstream: replicas disagree on dynamic-nginx.keepalive (shop-web-1: 32; "
            "shop-web-2: unset); using shop-web-2's, the newest container's"
        ),
    )


def test_each_disagreeing_option_gets_its_own_warning_in_a_fixed_order() -> None:
    built = model.build(
        [
            replica(1, DAY2, keepalive_requests="10", lb="least_conn", keepalive_timeout="5s"),
            replica(2, DAY1, keepalive_requests="20", lb="random", keepalive_timeout="5s"),
        ],
        proxy(),
    )
    web = upstream(built)
    assert (web.lb, web.keepalive_timeout, web.keepalive_requests) == ("least_conn", "5s", 10)
    assert [w.split(" (")[0] for w in built.warnings] == [
        "upstream web.upstream: replicas disagree on dynamic-nginx.lb",
        "upstream web.upstream: replicas disagree on dynamic-nginx.keepalive_requests",
    ]
    assert all(w.endswith("using shop-web-1's, the newest container's") for w in built.warnings)


def test_round_robin_is_named_in_a_conflict_warning() -> None:
    built = model.build([replica(1, DAY1, lb="least_conn"), replica(2, DAY2, lb="round_robin")], proxy())
    assert upstream(built).lb == ""
    assert built.warnings == (
        (
            "upstream web.upstream: replicas disagree on dynamic-nginx.lb (shop-web-1: least_conn; "
            "shop-web-2: round_robin); using shop-web-2's, the newest container's"
        ),
    )


def test_equal_creation_times_fall_back_to_the_name() -> None:
    built = model.build([replica(1, DAY1, lb="least_conn"), replica(2, DAY1, lb="ip_hash")], proxy())
    assert upstream(built).lb == "ip_hash"
    assert built.warnings[0].endswith("using shop-web-2's, the newest container's")


def test_conflicts_are_resolved_per_upstream() -> None:
    built = model.build(
        [
            replica(1, DAY1, lb="least_conn"),
            container("shop-api-1", service="api", labels=labelled({"lb": "ip_hash"})),
        ],
        proxy(),
    )
    assert (upstream(built).lb, upstream(built, "api.upstream").lb) == ("least_conn", "ip_hash")
    assert built.warnings == ()


NO_BACKUP = [
    pytest.param("hash $remote_addr", "hash", id="hash"),
    pytest.param("hash $request_uri consistent", "hash", id="consistent hash"),
    pytest.param("ip_hash", "ip_hash", id="ip_hash"),
    pytest.param("random", "random", id="random"),
    pytest.param("random two", "random", id="random two"),
    pytest.param("random two least_conn", "random", id="random two least_conn"),
]


@pytest.mark.parametrize(("lb", "method"), NO_BACKUP)
def test_backup_with_a_method_that_rejects_it_is_left_out_with_a_problem_line(lb: str, method: str) -> None:
    built = model.build([replica(1, lb=lb), replica(2, lb=lb, backup="true", weight="2")], proxy())
    assert members(built) == {"web.upstream": ["shop-web-1"]}
    assert upstream(built).lb == lb
    assert built.problems == (
        (
            f"container shop-web-2: dynamic-nginx.backup cannot be combined with lb={method} in upstream "
            "web.upstream (nginx rejects it); left out of web.upstream"
        ),
    )


@pytest.mark.parametrize(("lb", "method"), NO_BACKUP)
def test_only_backups_with_such_a_method_leave_the_upstream_empty(lb: str, method: str) -> None:
    built = model.build([replica(1, lb=lb, backup="yes"), replica(2, lb=lb, backup="yes")], proxy())
    assert members(built) == {"web.upstream": []}
    assert upstream(built).lb == ""  # nothing to balance: the 503 socket alone
    assert [p.split(":")[0] for p in built.problems] == ["container shop-web-1", "container shop-web-2"]


@pytest.mark.parametrize("lb", ["least_conn", "round_robin"])
def test_backup_is_kept_with_methods_that_allow_it(lb: str) -> None:
    built = model.build([replica(1, lb=lb), replica(2, lb=lb, backup="true")], proxy())
    assert parameters(built) == {"shop-web-1": "", "shop-web-2": "backup"}
    assert built.problems == ()


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        pytest.param(
            [
                replica(1, state="paused"),
                replica(2, backup="true", weight="3"),
                replica(3, backup="true", down="true"),
            ],
            {"shop-web-2": "weight=3", "shop-web-3": "down"},
            id="primary paused: backups serve as primaries, other parameters kept",
        ),
        pytest.param([replica(1, backup="true")], {"shop-web-1": ""}, id="a lone backup"),
    ],
)
def test_only_backups_live_are_promoted_with_a_warning(containers: list[Container], expected: dict[str, str]) -> None:
    built = model.build(containers, proxy())
    assert parameters(built) == expected
    assert built.warnings == ("upstream web.upstream: only backup servers are live; serving them as primary servers",)
    assert built.problems == ()


def test_promotion_is_per_upstream() -> None:
    built = model.build(
        [
            replica(1, backup="true"),
            container("shop-api-1", service="api", labels=labelled({"backup": "true"})),
        ]
        + [container("shop-api-2", service="api", ip="172.18.0.9")],
        proxy(),
    )
    assert parameters(built) == {"shop-web-1": ""}
    assert parameters(built, "api.upstream") == {"shop-api-1": "backup", "shop-api-2": ""}
    assert built.warnings == ("upstream web.upstream: only backup servers are live; serving them as primary servers",)


@pytest.mark.parametrize("value", ["false", "no", "0", "off", "FALSE"])
def test_enable_false_leaves_the_container_out_silently(value: str) -> None:
    built = model.build([replica(1, enable=value), replica(2)], proxy())
    assert members(built) == {"web.upstream": ["shop-web-2"]}
    assert [c.name for c in built.containers] == ["shop-web-2"]
    assert built.problems == ()


def test_enable_false_alone_makes_no_upstream() -> None:
    built = model.build([replica(1, enable="false")], proxy())
    assert built.upstreams == () and built.problems == ()


def test_enable_true_changes_nothing_inside_the_project() -> None:
    assert members(model.build([replica(1, enable="true")], proxy())) == {"web.upstream": ["shop-web-1"]}


IMPLICIT = (
    "container blog-api-1: (project blog) it would join api.upstream only by its service name; outside the "
    "proxy's project (shop) a container joins only an upstream it names: set dynamic-nginx.upstream=<name>; "
    "left out of api.upstream"
)


def other_project(labels: Mapping[str, str], **fields: object) -> Container:
    return container("blog-api-1", service="api", project="blog", ip="172.18.0.20", labels=labelled(labels), **fields)  # type: ignore[arg-type]


def plain(labels: Mapping[str, str], **fields: object) -> Container:
    """A `docker run` container: no compose labels at all."""
    return container(
        "lone",
        service=None,
        project=None,
        number=None,
        oneoff=None,
        ip="172.18.0.30",
        labels=labelled(labels),
        **fields,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("candidate", "scope", "expected", "problem"),
    [
        pytest.param(
            other_project({"enable": "true"}),
            "all",
            {},
            IMPLICIT,
            id="another project opts in, but joins no upstream by its service name alone",
        ),
        pytest.param(
            other_project({"enable": "yes"}),
            "all",
            {},
            IMPLICIT,
            id="enable=yes opts in, but joins no upstream by its service name alone",
        ),
        pytest.param(
            other_project({"enable": "ON"}),
            "all",
            {},
            IMPLICIT,
            id="enable=ON opts in, but joins no upstream by its service name alone",
        ),
        pytest.param(
            other_project({"enable": "true", "upstream": "blog"}),
            "all",
            {"blog.upstream": ["blog-api-1"]},
            "",
            id="another project under a name of its own",
        ),
        pytest.param(other_project({}), "all", {}, "", id="another project without enable is ignored"),
        pytest.param(other_project({"enable": "false"}), "all", {}, "", id="another project with enable=false"),
        pytest.param(other_project({"enable": "maybe"}), "all", {}, "", id="a value that is not true does not opt in"),
        pytest.param(other_project({"enable": "true"}), "project", {}, "", id="scope project ignores the opt-in"),
        pytest.param(
            other_project({"enable": "true"}, oneoff="True"),
            "all",
            {},
            "",
            id="one-off containers never opt in",
        ),
        pytest.param(
            plain({"enable": "true", "upstream": "pool"}),
            "all",
            {"pool.upstream": ["lone"]},
            "",
            id="plain container with an upstream name",
        ),
        pytest.param(
            plain({"enable": "true", "admin.port": "9000"}),
            "all",
            {"admin.upstream": ["lone"]},
            "",
            id="plain container with a named upstream",
        ),
        pytest.param(
            plain({"enable": "true"}),
            "all",
            {},
            "container lone: it has no compose service, so it needs the label dynamic-nginx.upstream=<name> "
            "to be served; left out",
            id="plain container without an upstream name is reported",
        ),
        pytest.param(plain({"upstream": "pool"}), "all", {}, "", id="plain container without enable is ignored"),
        pytest.param(plain({"enable": "true", "upstream": "pool"}), "project", {}, "", id="plain, scope project"),
    ],
)
def test_scope_all_opt_in(candidate: Container, scope: str, expected: dict[str, list[str]], problem: str) -> None:
    built = model.build([candidate], proxy(), scope=scope)
    assert members(built) == expected
    assert built.problems == ((problem,) if problem else ())


def test_opted_in_containers_sit_beside_the_project_ones() -> None:
    built = model.build(
        [
            replica(1),
            other_project({"enable": "true", "upstream": "api"}),
            plain({"enable": "true", "upstream": "pool"}),
        ],
        proxy(),
        scope="all",
    )
    assert members(built) == {
        "api.upstream": ["blog-api-1"],
        "pool.upstream": ["lone"],
        "web.upstream": ["shop-web-1"],
    }


TWO_NETWORKS = {"shop_back": "172.20.0.2", NETWORK: "172.18.0.2"}


@pytest.mark.parametrize(
    ("labels", "address"),
    [
        pytest.param({}, "172.20.0.2:80", id="no label: first shared network by name"),
        pytest.param({"network": NETWORK}, "172.18.0.2:80", id="label picks the other one"),
        pytest.param({"network": "shop_back"}, "172.20.0.2:80", id="label picks the first one"),
    ],
)
def test_network_label_picks_the_network(labels: dict[str, str], address: str) -> None:
    built = model.build(
        [container(networks=TWO_NETWORKS, labels=labelled(labels))], proxy(networks=("shop_back", NETWORK))
    )
    (server,) = upstream(built).servers
    assert server.address == address


@pytest.mark.parametrize(
    ("networks", "wanted", "problem"),
    [
        pytest.param(
            TWO_NETWORKS,
            "shop_front",
            "container shop-web-1: label dynamic-nginx.network='shop_front' names a network it does not share "
            "with the proxy (shared: shop_back, shop_default); left out",
            id="a network the container is not on",
        ),
        pytest.param(
            {**TWO_NETWORKS, "private": "10.9.0.2"},
            "private",
            "container shop-web-1: label dynamic-nginx.network='private' names a network it does not share "
            "with the proxy (shared: shop_back, shop_default); left out",
            id="a network only the container is on",
        ),
        pytest.param(
            {"elsewhere": "10.0.0.2"},
            "elsewhere",
            "container shop-web-1: label dynamic-nginx.network='elsewhere' names a network it does not share "
            "with the proxy (shared: none); left out",
            id="no shared network at all",
        ),
        pytest.param(
            {"shop_back": "", NETWORK: "172.18.0.2"},
            "shop_back",
            "container shop-web-1: no IPv4 address on shared network(s) shop_back; left out",
            id="the chosen network has no IPv4 address",
        ),
        pytest.param(
            TWO_NETWORKS,
            "shop back;",
            "container shop-web-1: label dynamic-nginx.network='shop back;' is invalid; allowed: a Docker "
            "network name. Fix the label; this container is left out.",
            id="not a network name",
        ),
    ],
)
def test_network_label_that_cannot_be_used_leaves_the_container_out(
    networks: dict[str, str], wanted: str, problem: str
) -> None:
    candidate = container("shop-web-1", number=1, networks=networks, labels=labelled({"network": wanted}))
    sibling = container("shop-web-2", number=2, ip="172.18.0.3")
    built = model.build([candidate, sibling], proxy(networks=("shop_back", NETWORK)))
    assert members(built) == {"web.upstream": ["shop-web-2"]}
    assert built.problems == (problem,)


def test_named_upstreams_carry_their_own_options() -> None:
    labels = {
        "port": "8000",
        "lb": "ip_hash",
        "weight": "5",
        "admin.port": "9000",
        "admin.lb": "least_conn",
        "admin.keepalive": "8",
        "admin.weight": "2",
        "admin.backup": "false",
        "metrics.port": "9100",
        "metrics.max_fails": "0",
    }
    built = model.build([container("shop-web-1", ip="172.18.0.2", labels=labelled(labels))], proxy())
    assert {u.name: (u.lb, u.keepalive) for u in built.upstreams} == {
        "admin.upstream": ("least_conn", 8),
        "metrics.upstream": ("", None),
        "web.upstream": ("ip_hash", None),
    }
    assert {u.name: [(s.address, s.parameters) for s in u.servers] for u in built.upstreams} == {
        "admin.upstream": [("172.18.0.2:9000", "weight=2")],
        "metrics.upstream": [("172.18.0.2:9100", "max_fails=0")],
        "web.upstream": [("172.18.0.2:8000", "weight=5")],
    }
    assert built.containers == (container("shop-web-1", ip="172.18.0.2", labels=labelled(labels)),)
    assert built.problems == () and built.warnings == ()


def test_named_only_container_does_not_join_its_own_upstream() -> None:
    built = model.build([replica(1, **{"admin.port": "9000"})], proxy())
    assert members(built) == {"admin.upstream": ["shop-web-1"]}


@pytest.mark.parametrize(
    ("labels", "exposed", "port"),
    [
        pytest.param({"admin.weight": "2"}, (8080,), 8080, id="no named port: the single exposed port"),
        pytest.param({"admin.weight": "2", "port": "7000"}, (8080,), 7000, id="no named port: dynamic-nginx.port"),
        pytest.param({"admin.port": "9000", "port": "7000"}, (8080,), 9000, id="the named port wins for its upstream"),
    ],
)
def test_named_upstream_port(labels: dict[str, str], exposed: tuple[int, ...], port: int) -> None:
    built = model.build([container(labels=labelled(labels), exposed=exposed)], proxy())
    (server,) = upstream(built, "admin.upstream").servers
    assert server.port == port


def test_named_upstream_of_replicas_resolves_conflicts_like_any_other() -> None:
    built = model.build(
        [
            replica(1, DAY2, **{"admin.port": "9000", "admin.lb": "random"}),
            replica(2, DAY1, **{"admin.port": "9000"}),
        ],
        proxy(),
    )
    assert members(built) == {"admin.upstream": ["shop-web-1", "shop-web-2"]}
    assert upstream(built, "admin.upstream").lb == "random"
    assert built.warnings == (
        (
            "upstream admin.upstream: replicas disagree on dynamic-nginx.admin.lb (shop-web-1: random; shop-web-2: "
            "round_robin); using shop-web-1's, the newest container's"
        ),
    )


GOOD = [
    replica(1, DAY1, lb="least_conn", keepalive="16", weight="2"),
    replica(2, DAY1, lb="least_conn", keepalive="16"),
    container(
        "shop-api-1",
        service="api",
        ip="172.18.0.10",
        labels=labelled({"lb": "ip_hash", "port": "80", "admin.port": "9000"}),
    ),
]
HOSTILE_LABELS = [
    pytest.param({"lb": "hash $request_uri; server 6.6.6.6:80"}, id="lb with a second directive"),
    pytest.param({"lb": "least_conn;\n}\nserver {"}, id="lb that closes the block"),
    pytest.param({"upstream": "web;}"}, id="upstream name with semicolon and brace"),
    pytest.param({"web.port": "80\n"}, id="named port with a newline"),
    pytest.param({"admin.lb": "least_conn;"}, id="lb for another service's named upstream"),
    pytest.param({"port": "80", "weight": "0"}, id="weight zero"),
    pytest.param({"keepalive": str(10**30)}, id="huge keepalive"),
    pytest.param({"keepalive_timeout": "1m1m"}, id="time nginx would reject"),
    pytest.param({"fail_timeout": "500ms"}, id="milliseconds where nginx takes seconds"),
    pytest.param({"max_conns": "-1"}, id="negative"),
    pytest.param({"backup": "ｔｒｕｅ"}, id="fullwidth boolean"),
    pytest.param({"port": "８０"}, id="fullwidth port"),
    pytest.param({"network": "../../etc"}, id="network path"),
    pytest.param({"lb": "hash " + "a" * 252}, id="257-character value"),
    pytest.param({"x\n}": "1"}, id="unknown key with a newline"),
    pytest.param({"admin.enable": "false"}, id="container option under a name"),
]


@pytest.mark.parametrize("labels", HOSTILE_LABELS)
@pytest.mark.parametrize("service", ["evil", "web"])
def test_bad_labels_exclude_only_their_container(labels: dict[str, str], service: str) -> None:
    intruder = container(
        f"shop-{service}-9",
        service=service,
        number=9,
        ip="172.18.0.99",
        created=DAY3,
        labels=labelled(labels),
    )
    alone = model.build(GOOD, proxy())
    assert alone.problems == ()
    built = model.build([*GOOD, intruder], proxy())
    assert [u for u in built.upstreams if u.name != "evil.upstream"] == list(alone.upstreams)
    assert built.containers == alone.containers
    assert built.warnings == alone.warnings == ()
    (problem,) = built.problems
    assert problem.startswith(f"container shop-{service}-9: ")
    assert problem.isprintable()


def test_a_container_with_bad_labels_keeps_its_service_upstream_at_503() -> None:
    built = model.build([container("shop-evil-1", service="evil", labels=labelled({"lb": "x;"}))], proxy())
    assert members(built) == {"evil.upstream": []}
    assert len(built.problems) == 1
