"""Property: whatever labels containers carry, each one is either reported or safely rendered.

Random label maps (known option names, named forms and random keys; valid
values mixed with hostile text) on one to three containers go through
model.build and the built-in template. A container with labels that cannot
be served must be named in a problem line; everything that is rendered must
keep to the line shapes the template emits, and the real `nginx -t` must
accept it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dynamic_nginx import exclusions, model, render, write
from dynamic_nginx import labels as L
from dynamic_nginx.model import Container, Model
from dynamic_nginx.settings import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    BUILTIN_NAME,
    BUILTIN_TEMPLATES,
    NETWORK,
    container,
    needs_nginx,
    nginx_command,
    proxy,
    settings_in,
)

P = L.LABEL_PREFIX
OPTIONS = sorted({*L.CONTAINER_PARSERS, *L.MEMBER_PARSERS})
NAMES = ["admin", "Admin", "metrics", "api.v2", "web", "pool.upstream"]
BOOLEANS = ["true", "false", "yes", "no", "1", "0", "on", "off", "TRUE"]
# Valid values per option; an option added later without an entry here gets booleans.
VALID = {
    "port": ["80", "8000", "9000", "1", "65535", "080"],
    "weight": ["1", "5", "1000", "007"],
    "max_fails": ["0", "3", "1000"],
    "fail_timeout": ["0", "10", "30s", "1m", "1h30m", "1d2h3m4s"],
    "max_conns": ["0", "10", "100000"],
    "backup": ["true", "false", "yes", "no", "1", "0", "on", "off", "TRUE"],
    "down": ["true", "false", "yes", "no", "1", "0", "on", "off"],
    "lb": [
        "round_robin",
        "least_conn",
        "ip_hash",
        "random",
        "random two",
        "random two least_conn",
        "hash $request_uri",
        "hash $request_uri consistent",
        "hash $http_x_user consistent",
        "hash $remote_addr$cookie_id:/k",
    ],
    "keepalive": ["1", "16", "10000"],
    "keepalive_timeout": ["0", "60s", "500ms", "1m30s", "1s500ms"],
    "keepalive_requests": ["1", "1000", "1000000"],
    "enable": ["true", "false", "yes", "no", "on", "off", "1", "0"],
    "network": [NETWORK, NETWORK, "shop_back", "elsewhere"],
    "upstream": ["pool", "pool", "web", "api", "Pool.Upstream", "admin"],
}
HOSTILE = [
    "",
    " ",
    ";",
    "{",
    "}",
    "'",
    '"',
    "\n",
    "\t",
    "$",
    "#",
    "80;",
    "1 }",
    "least_conn;",
    "hash $foo",
    "hash $request_uri;",
    "hash  $uri",
    "random two least_time",
    "1m1m",
    "1s1m",
    "500ms1s",
    "10**30",
    str(10**30),
    "-1",
    "0001",
    "١٢٣",
    "８０",
    "ｔｒｕｅ",
    "x" * 257,
    "1" * 300,
    "web.upstream; server 6.6.6.6",
    "pool\nserver 6.6.6.6:80;",
]
# Text made of characters that matter to nginx, with digits and letters to
# look almost valid.
NGINX_TEXT = st.text(alphabet="0123456789abcdhmsx_ .;{}$#'\"\n\t١５é", max_size=12)
NUMBER = st.one_of(
    st.integers(-5, 2_000_000).map(str),
    st.integers(0, 10**30).map(str),
    st.tuples(st.integers(1, 12), st.integers(0, 1000)).map(lambda z: "0" * z[0] + str(z[1])),
)
# nginx times built from parts in any order, so repeated and out-of-order
# units come up as often as well-formed ones; now and then a unit nginx
# knows but we do not offer, or a number too long.
TIME = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99), st.integers(0, 2_000_000)),
        st.sampled_from(["ms", "s", "m", "h", "d"] * 3 + ["", "w", "M", "y"]),
    ),
    min_size=1,
    max_size=4,
).map(lambda parts: "".join(f"{number}{unit}" for number, unit in parts))
LB_WORDS = [
    "hash", "hash", "random", "two", "least_conn", "least_time", "ip_hash", "consistent", "round_robin",
    "$request_uri", "$foo", "$http_x_user", "$uri;", "$cookie_a$arg_b", "k:/-.", "", "{", "\n",
]  # fmt: skip
LB = st.lists(st.sampled_from(LB_WORDS), min_size=1, max_size=4).map(" ".join)
STRUCTURED = {
    **dict.fromkeys(["port", "weight", "max_fails", "max_conns", "keepalive", "keepalive_requests"], NUMBER),
    "fail_timeout": TIME,
    "keepalive_timeout": TIME,
    "lb": LB,
}


def values_for(option: str, hostile: bool) -> st.SearchStrategy[str]:
    """Values near the option's grammar, valid or not; with hostile, also text meant to break out."""
    valid = st.sampled_from(VALID.get(option, BOOLEANS))
    near = STRUCTURED.get(option, valid)
    if not hostile:
        return st.one_of(valid, valid, near)
    return st.one_of(valid, near, st.sampled_from(HOSTILE), NGINX_TEXT)


@st.composite
def label_maps(draw: st.DrawFn) -> dict[str, str]:
    """Labels under our prefix. A plain map uses known options in their own forms (the values
    may still be invalid); a hostile one (one in three) also misplaced options and random keys."""
    hostile = draw(st.sampled_from([False, False, True]))
    labels: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 5))):
        option = draw(st.sampled_from(OPTIONS))
        keys = [st.just(P + option)]
        if hostile or option in L.MEMBER_PARSERS:
            keys.append(st.sampled_from([f"{P}{name}.{option}" for name in NAMES]))
        if hostile:
            keys.append(NGINX_TEXT.map(lambda text: P + text))
        labels[draw(st.one_of(keys))] = draw(values_for(option, hostile))
    return labels


@st.composite
def containers(draw: st.DrawFn) -> list[Container]:
    """One to three containers: mostly compose services of the proxy's project, some of
    another project or plain `docker run` ones (often opted in), a few unreachable or paused."""
    made = []
    for index in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["service"] * 6 + ["other project", "plain"]))
        service = draw(st.sampled_from(["web", "api"]))
        address = f"172.18.0.{index + 2}"
        labels = draw(label_maps())
        if kind != "service" and draw(st.booleans()):
            labels.setdefault(P + "enable", "true")
            if kind == "plain":
                labels.setdefault(P + "upstream", "pool")
        made.append(
            container(
                f"c{index}-{service}" if kind == "service" else f"{kind.split()[0]}{index}",
                service=None if kind == "plain" else service,
                project={"service": "shop", "other project": "other", "plain": None}[kind],
                number=index + 1,
                networks=draw(
                    st.sampled_from(
                        [{NETWORK: address}] * 3
                        + [{NETWORK: address, "shop_back": f"172.20.0.{index + 2}"}] * 2
                        + [{"elsewhere": f"10.0.0.{index + 2}"}]
                    )
                ),
                exposed=draw(st.sampled_from([(), (), (8000,), (8000,), (8000, 9000)])),
                state=draw(st.sampled_from(["running"] * 7 + ["paused"])),
                created=draw(st.sampled_from(["2026-01-01T00:00:00.000000001Z", "2026-01-02T00:00:00.000000000Z"])),
                labels=labels,
            )
        )
    return made


NAME = r"[a-z0-9][a-z0-9_-]{0,62}(?:\.[a-z0-9][a-z0-9_-]{0,62}){0,7}"
TIME_SHAPE = r"[0-9][0-9dhms]*"
HASH_KEY = r"(?:\$[a-z_0-9]+|[A-Za-z0-9.:/-])+"
SERVER_PARAMETER = rf"(?:weight=[0-9]+|max_fails=[0-9]+|fail_timeout={TIME_SHAPE}|max_conns=[0-9]+|backup|down)"
# Every line the built-in template can emit, and nothing else.
LINE_SHAPES = [
    rf"upstream {NAME} \{{",
    rf"    zone {NAME} 64k;",
    rf"    hash {HASH_KEY}(?: consistent)?;",
    r"    (?:least_conn|ip_hash|random|random two|random two least_conn);",
    rf"    server [0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}:[0-9]{{1,5}}(?: {SERVER_PARAMETER})*;  # [A-Za-z0-9][A-Za-z0-9_.-]*",
    r"    server 127\.0\.0\.1:29503;",  # the built-in 503 server, nothing else without a comment
    r"    keepalive [0-9]+;",
    rf"    keepalive_timeout {TIME_SHAPE};",
    r"    keepalive_requests [0-9]+;",
    r"\}",
    r"server \{",
    r"    listen 127\.0\.0\.1:29503;",
    r"    access_log off;",
    r"    return 503;",
]
LINE_RE = re.compile("|".join(f"(?:{shape})" for shape in LINE_SHAPES))


def unexpected_lines(text: str) -> list[str]:
    """Lines of the rendered file that are neither blank, nor comments, nor of a known shape."""
    return [
        line
        for line in text.split("\n")
        if line.strip() and not line.lstrip().startswith("#") and not LINE_RE.fullmatch(line)
    ]


def silent_reason(candidate: Container, scope: str) -> str | None:
    """Why a container may be left out without a problem line, or None if it may not."""
    if not model.in_scope(candidate, proxy(), scope):
        return "out of scope"
    if not exclusions.is_live(candidate):
        return "not live"
    if candidate.labels.get(P + "enable", "").lower() in L.FALSE:
        return "enable=false"
    return None


def check_accounted_for(built: Model, made: list[Container], scope: str) -> None:
    """Every container is served, named in a problem line, or left out for a reason that needs none."""
    served = {c.name for c in built.containers}
    for problem in built.problems:
        assert "\n" not in problem and "\r" not in problem, problem
        assert any(problem.startswith(f"container {c.name}: ") for c in made), problem
    for candidate in made:
        reported = any(p.startswith(f"container {candidate.name}: ") for p in built.problems)
        assert candidate.name in served or reported or silent_reason(candidate, scope), (
            f"{candidate.name} vanished without a word: {dict(candidate.labels)}"
        )
    in_servers = {s.container.id for u in built.upstreams for s in u.servers}
    excluded = [e.id for e in built.excluded]
    assert len(excluded) == len(set(excluded)), "a container excluded twice"
    assert set(excluded) == {c.id for c in made} - in_servers, "every unserved container has one exclusion"
    for exclusion in built.excluded:
        assert any(
            exclusion.reason == r or (r.endswith(":") and exclusion.reason.startswith(r))
            for r in exclusions.EXCLUSION_REASONS
        ), exclusion


def rendered_text(built: Model, settings_: Settings) -> str:
    templates = render.find_templates([settings_.builtin_templates])
    rendered = render.render_all(templates, built, settings_)
    assert rendered.errors == {}
    return rendered.outputs[BUILTIN_NAME]


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(made=containers(), scope=st.sampled_from(["project", "all"]))
def test_every_container_is_served_reported_or_rightly_ignored(made: list[Container], scope: str) -> None:
    built = model.build(made, proxy(networks=(NETWORK, "shop_back")), scope=scope)
    check_accounted_for(built, made, scope)
    text = rendered_text(built, Settings(builtin_templates=BUILTIN_TEMPLATES))
    assert unexpected_lines(text) == []
    for upstream in built.upstreams:
        for server in upstream.servers:
            assert f"    server {server.address}" in text


@pytest.fixture(scope="module")
def nginx_dir() -> Iterator[tuple[Settings, list[str]]]:
    """One folder for every example: settings under it and the `nginx -t` command for it."""
    with tempfile.TemporaryDirectory(prefix="dynamic-nginx-property-") as tmp:
        settings_ = settings_in(Path(tmp))
        yield settings_, nginx_command(Path(tmp), settings_.conf_dir) + ["-t", "-q"]


def nginx_check(nginx_dir: tuple[Settings, list[str]], built: Model) -> None:
    """Render with the built-in template, keep to the line shapes, and pass the real `nginx -t`."""
    settings_, command = nginx_dir
    text = rendered_text(built, settings_)
    assert unexpected_lines(text) == []
    write.sync(settings_.conf_dir, {BUILTIN_NAME: text})
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"nginx -t refused:\n{result.stderr}\n--- rendered:\n{text}"


@needs_nginx
@PROPERTY
@given(made=containers(), scope=st.sampled_from(["project", "all"]))
def test_nginx_accepts_whatever_the_labels_render_to(
    nginx_dir: tuple[Settings, list[str]], made: list[Container], scope: str
) -> None:
    built = model.build(made, proxy(networks=(NETWORK, "shop_back")), scope=scope)
    check_accounted_for(built, made, scope)
    nginx_check(nginx_dir, built)


@st.composite
def one_label_each(draw: st.DrawFn) -> list[Container]:
    """Up to twelve services of one container each, each with one option label whose value
    keeps near the option's grammar: whatever a validator accepts, nginx must accept too."""
    made = []
    for index in range(draw(st.integers(1, 12))):
        option = draw(st.sampled_from(sorted(L.MEMBER_PARSERS)))
        valid = st.sampled_from(VALID[option])
        value = draw(st.one_of(valid, STRUCTURED.get(option, valid), STRUCTURED.get(option, valid)))
        made.append(
            container(
                f"shop-s{index}-1",
                service=f"s{index}",
                ip=f"172.18.1.{index + 2}",
                labels={P + option: value},
            )
        )
    return made


@needs_nginx
@PROPERTY
@given(made=one_label_each())
def test_every_value_a_validator_accepts_nginx_accepts(
    nginx_dir: tuple[Settings, list[str]], made: list[Container]
) -> None:
    built = model.build(made, proxy())
    check_accounted_for(built, made, "project")
    assert len(built.containers) + len(built.problems) == len(made)
    nginx_check(nginx_dir, built)


@pytest.mark.parametrize(
    ("line", "fits"),
    [
        pytest.param("upstream web.upstream {", True, id="upstream opening"),
        pytest.param("    zone web.upstream 64k;", True, id="zone"),
        pytest.param("    hash $request_uri consistent;", True, id="hash"),
        pytest.param("    random two least_conn;", True, id="random"),
        pytest.param("    server 172.18.0.2:80 weight=2 fail_timeout=1h30m backup;  # shop-web-1", True, id="server"),
        pytest.param("    server 127.0.0.1:29503;", True, id="the 503 server"),
        pytest.param("    server 127.0.0.1:29504;", False, id="another loopback server without its comment"),
        pytest.param("    keepalive_timeout 1s500ms;", True, id="keepalive_timeout"),
        pytest.param("    server 6.6.6.6:80;", False, id="server line without its comment"),
        pytest.param("    server 172.18.0.2:80 weight=2;  # a; b", False, id="comment with a semicolon"),
        pytest.param("    least_conn; server 6.6.6.6:80;", False, id="two directives on a line"),
        pytest.param("    hash $uri; server 6.6.6.6:80;", False, id="hash, then another directive"),
        pytest.param("upstream web.upstream { }", False, id="block on one line"),
        pytest.param("    proxy_pass http://evil;", False, id="foreign directive"),
        pytest.param("    zone web.upstream 64k; include /etc/passwd;", False, id="zone, then include"),
    ],
)
def test_the_line_whitelist_itself(line: str, fits: bool) -> None:
    assert (unexpected_lines(line) == []) is fits
