"""The status model (status.json), secret redaction, /metrics checked line by line
by a strict exposition parser, the page, the status listener setting and its nginx
server block (checked by the real nginx -t), and the status server over its socket."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import metrics, model, render, rundir, status, status_server, write
from dynamic_nginx import settings as S
from dynamic_nginx.nginx import Nginx
from fake_clock import FakeClock
from support import BUILTIN_NAME, container, needs_nginx, nginx_command, proxy, settings_in

STUB_PAGE = "Active connections: 3 \nserver accepts handled requests\n 17 16 42 \nReading: 0 Writing: 1 Waiting: 2 \n"
STUB = metrics.parse_stub(STUB_PAGE)


def built(*containers: model.Container) -> model.Model:
    return model.build(containers, proxy(), {"api.upstream"})


TWO_WEB = built(
    container("shop-web-1", number=1, ip="172.18.0.2", exposed=(80,)),
    container(
        "shop-web-2",
        number=2,
        ip="172.18.0.3",
        exposed=(80,),
        health="healthy",
        labels={"dynamic-nginx.weight": "3", "com.example.api_token": "hunter2"},
    ),
    container("shop-web-3", number=3, ip="172.18.0.9", exposed=(8080,), labels={"dynamic-nginx.backup": "true"}),
)
DOCKER = {"connected": True, "api_version": "1.41", "reconnects": 2, "events": {"start": 3, "die": 1}}
RELOADS = {
    "generation": 4,
    "totals": {"ok": 4, "invalid": 1, "failed": 0},
    "last_success_at": 1700000000.5,
    "recent": [
        status.reload_entry(1700000100.0, 0.012, "invalid", 'unknown directive "sever" in /etc/nginx/conf.d/a.conf:3'),
        status.reload_entry(1700000000.4, 0.1, "ok", ""),
    ],
}


def composed(m: model.Model = TWO_WEB, reloads: Mapping[str, Any] | None = RELOADS) -> dict[str, Any]:
    return status.compose(status.watcher_part(m, DOCKER), reloads, {"DYNAMIC_NGINX_SCOPE": "all"}, 1700000200.0)


# --- the JSON model ---------------------------------------------------------------------------------


def by_name(data: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return {u["name"]: {m["name"]: m for m in u["members"]} for u in data["upstreams"]}


@pytest.mark.parametrize(
    ("containers", "expected", "excluded"),
    [
        pytest.param((), {"api.upstream": {}}, [], id="no containers: the referenced upstream, empty"),
        pytest.param(
            (container("shop-web-1", ip="172.18.0.2", exposed=(80,)),),
            {"api.upstream": {}, "web.upstream": {"shop-web-1": ("active", "172.18.0.2:80", None, "none")}},
            [],
            id="one plain replica is active",
        ),
        pytest.param(
            (
                container("shop-web-1", ip="172.18.0.2", exposed=(80,), health="healthy"),
                container(
                    "shop-web-2",
                    ip="172.18.0.3",
                    exposed=(80,),
                    labels={"dynamic-nginx.backup": "true", "dynamic-nginx.weight": "2"},
                ),
            ),
            {
                "api.upstream": {},
                "web.upstream": {
                    "shop-web-1": ("active", "172.18.0.2:80", None, "healthy"),
                    "shop-web-2": ("backup", "172.18.0.3:80", 2, "none"),
                },
            },
            [],
            id="backup label: state backup, weight shown",
        ),
        pytest.param(
            (container("shop-web-1", ip="172.18.0.2", exposed=(80,), health="starting"),),
            {"api.upstream": {}, "web.upstream": {}},
            [("shop-web-1", "health_starting")],
            id="a starting container is no member: excluded, with the model's reason",
        ),
    ],
)
def test_members_in_status_json(
    containers: tuple[model.Container, ...], expected: dict[str, Any], excluded: list[tuple[str, str]]
) -> None:
    data = composed(built(*containers))
    found = {
        name: {c: (m["state"], m["address"], m["weight"], m["health"]) for c, m in members.items()}
        for name, members in by_name(data).items()
    }
    assert found == expected
    assert [(e["name"], e["reason"]) for e in data["excluded"]] == excluded


def test_a_member_names_its_container_network_and_exact_server_line() -> None:
    web2 = by_name(composed())["web.upstream"]["shop-web-2"]
    assert web2["id"] == container("shop-web-2").id
    assert (web2["service"], web2["project"], web2["network"]) == ("web", "shop", "shop_default")
    assert web2["server"] == "server 172.18.0.3:80 weight=3;"
    assert web2["labels"] == {"dynamic-nginx.weight": "3"}  # only ours: the others say nothing about routing


def test_the_status_json_holds_reloads_docker_and_a_redacted_environment() -> None:
    data = composed()
    assert data["reloads"]["recent"][0]["error"].startswith('unknown directive "sever"')
    assert data["docker"]["api_version"] == "1.41"
    assert data["environment"] == {"DYNAMIC_NGINX_SCOPE": "all"}
    assert "hunter2" not in status.encode(data).decode()


def test_before_anyone_reported_the_status_says_so() -> None:
    data = status.compose(None, None, {}, 0.0)
    assert data["upstreams"] == [] and data["docker"]["connected"] is False
    assert data["reloads"]["totals"] == {"ok": 0, "invalid": 0, "failed": 0}


def test_the_watcher_status_is_written_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / rundir.WATCHER_STATUS
    reporter = status.WatcherStatus(path)
    reporter.synced(TWO_WEB)
    reporter.flush()
    first = path.stat().st_ino
    reporter.synced(TWO_WEB)
    reporter.flush()
    assert path.stat().st_ino == first, "the same status was written again"
    reporter.connected("1.43")
    reporter.flush()
    assert path.stat().st_ino != first
    data = json.loads(path.read_text())
    assert data["docker"]["connected"] is True and data["docker"]["api_version"] == "1.43"


def test_the_watcher_part_is_compact_json_of_the_whole_model(tmp_path: Path) -> None:
    path = tmp_path / rundir.WATCHER_STATUS
    reporter = status.WatcherStatus(path)
    reporter.synced(TWO_WEB)
    reporter.flush()
    text = path.read_text()
    assert text.count("\n") == 1 and text.endswith("}\n") and not text.startswith("{\n"), "one line"
    expected = status.watcher_part(TWO_WEB, json.loads(text)["docker"])
    assert json.loads(text) == expected


def test_an_unchanged_upstream_is_not_serialised_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reporter = status.WatcherStatus(tmp_path / rundir.WATCHER_STATUS)
    serialised: list[str] = []
    real = status.upstream
    monkeypatch.setattr(status, "upstream", lambda u: serialised.append(u.name) or real(u))
    reporter.synced(TWO_WEB)
    reporter.flush()
    assert sorted(serialised) == ["api.upstream", "web.upstream"]
    serialised.clear()
    web = next(u for u in TWO_WEB.upstreams if u.name == "web.upstream")
    fewer = dataclasses.replace(web, servers=web.servers[:1])
    changed = dataclasses.replace(TWO_WEB, upstreams=tuple(fewer if u is web else u for u in TWO_WEB.upstreams))
    reporter.synced(changed)
    reporter.flush()
    assert serialised == ["web.upstream"], "api.upstream did not change"
    part = status.load(tmp_path / rundir.WATCHER_STATUS)
    assert part is not None
    assert [len(u["members"]) for u in part["upstreams"]] == [0, 1]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param([], None, id="nothing changed: nothing due"),
        pytest.param([0.0], 0.25, id="one change: once idle for 0.25 s"),
        pytest.param([0.0, 0.2], 0.45, id="a second change moves it on"),
        pytest.param([0.0, 0.2, 0.4, 0.6, 0.8], 1.0, id="changes keep coming: at most 1 s after the first"),
        pytest.param([0.0, 0.2, 0.4, 0.6, 0.8, 0.95], 1.0, id="still 1 s after the first"),
    ],
)
def test_when_the_watcher_part_is_due(changes: list[float], expected: float | None) -> None:
    clock = FakeClock(0.0)
    when = status.Coalesce(clock)
    for at in changes:
        clock.time = at
        when.changed()
    due = when.due()
    assert (round(due, 6) if due is not None else None) == expected


@pytest.mark.parametrize(
    ("steps", "written_at"),
    [
        pytest.param([("synced", 0.0), ("check", 0.1), ("check", 0.3)], [0.3], id="written once idle"),
        pytest.param(
            [("synced", 0.0), ("synced", 0.2), ("check", 0.3), ("synced", 0.4), ("check", 0.5), ("check", 0.7)],
            [0.7],
            id="each sync while busy waits; one write for three",
        ),
        pytest.param(
            [("synced", t / 10) for t in range(0, 12, 2)] + [("check", 1.05)],
            [1.05],
            id="busy for over a second: written anyway",
        ),
        pytest.param([("synced", 0.0), ("disconnected", 0.1)], [0.1], id="a lost connection is written at once"),
        pytest.param([("synced", 0.0), ("flush", 0.01), ("check", 0.5)], [0.01], id="flush: at once, and once"),
        pytest.param([("check", 5.0), ("flush", 6.0)], [], id="nothing synced: nothing written"),
    ],
)
def test_the_watcher_part_is_written_once_the_watcher_is_idle(
    tmp_path: Path, steps: list[tuple[str, float]], written_at: list[float]
) -> None:
    clock = FakeClock(0.0)
    path = tmp_path / rundir.WATCHER_STATUS
    reporter = status.WatcherStatus(path, clock)
    writes: list[float] = []
    for n, (step, at) in enumerate(steps):
        clock.time = at
        before = path.stat().st_ino if path.exists() else None
        if step == "synced":
            servers = TWO_WEB.upstreams[1].servers[: 1 + n % 3]  # a different model each time
            upstreams = (TWO_WEB.upstreams[0], dataclasses.replace(TWO_WEB.upstreams[1], servers=servers))
            reporter.synced(dataclasses.replace(TWO_WEB, upstreams=upstreams, problems=(f"sync {n}",)))
        elif step == "check":
            reporter.write_due()
        elif step == "flush":
            reporter.flush()
        else:
            reporter.disconnected("gone")
        if path.exists() and path.stat().st_ino != before:
            writes.append(at)
    assert writes == written_at


def test_with_the_listener_off_nothing_is_written(tmp_path: Path) -> None:
    reporter = status.WatcherStatus(None)
    reporter.connected("1.43")
    reporter.synced(TWO_WEB)
    history = status.ReloadHistory(None)
    history.add(1.0, 0.1, "ok")
    assert list(tmp_path.iterdir()) == []


def test_the_reload_history_keeps_the_last_ones_newest_first(tmp_path: Path) -> None:
    history = status.ReloadHistory(tmp_path / rundir.RELOAD_STATUS)
    for n in range(status.RECENT_RELOADS + 5):
        history.add(float(n), 0.01, "ok")
    history.add(100.0, 0.02, "invalid", "[emerg] unexpected end of file")
    data = json.loads((tmp_path / rundir.RELOAD_STATUS).read_text())
    assert len(data["recent"]) == status.RECENT_RELOADS
    assert data["recent"][0] == {
        "at": 100.0,
        "duration_seconds": 0.02,
        "result": "invalid",
        "error": "[emerg] unexpected end of file",
    }
    assert data["totals"] == {"ok": status.RECENT_RELOADS + 5, "invalid": 1, "failed": 0}
    assert data["generation"] == status.RECENT_RELOADS + 5


# --- redaction ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        pytest.param("DB_PASSWORD", "s3cret", status.REDACTED, id="password"),
        pytest.param("MYSQL_ROOT_PASSWD", "x", status.REDACTED, id="passwd"),
        pytest.param("app.secret", "x", status.REDACTED, id="secret in a label"),
        pytest.param("GITHUB_TOKEN", "ghp_x", status.REDACTED, id="token"),
        pytest.param("apiKey", "x", status.REDACTED, id="camel-case api key"),
        pytest.param("AWS_SECRET_ACCESS_KEY", "x", status.REDACTED, id="access key"),
        pytest.param("SSH_PRIVATE_KEY", "x", status.REDACTED, id="private key"),
        pytest.param("ssl.key", "x", status.REDACTED, id="dotted key"),
        pytest.param("x-auth-header", "x", status.REDACTED, id="auth"),
        pytest.param("OAUTH_CLIENT_CREDENTIALS", "x", status.REDACTED, id="credentials"),
        pytest.param("SESSION_COOKIE", "x", status.REDACTED, id="cookie"),
        pytest.param("traefik.http.middlewares.a.basicauth.users", "u:$apr1$x", status.REDACTED, id="basic auth users"),
        pytest.param("SENTRY_DSN", "https://k@sentry.io/1", status.REDACTED, id="dsn"),
        pytest.param(
            "DOCKER_HOST",
            "tcp://admin:pw@10.0.0.1:2376",
            f"tcp://admin:{status.REDACTED}@10.0.0.1:2376",
            id="a URL's password in a harmless name",
        ),
        pytest.param("DYNAMIC_NGINX_SCOPE", "all", "all", id="a plain setting"),
        pytest.param("dynamic-nginx.keepalive", "16", "16", id="keepalive is not a key"),
        pytest.param("KEYCLOAK_URL", "http://kc", "http://kc", id="keycloak is not a key"),
        pytest.param("com.docker.compose.service", "web", "web", id="a compose label"),
        pytest.param("DOCKER_HOST", "unix:///var/run/docker.sock", "unix:///var/run/docker.sock", id="no password"),
    ],
)
def test_redaction(name: str, value: str, shown: str) -> None:
    assert status.redact(name, value) == shown


# --- /metrics: a strict exposition-format parser --------------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf)|NaN")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text: str) -> dict[str, Any]:
    """Every line valid Prometheus text format 0.0.4, or an AssertionError naming it:
    HELP then TYPE once per family, samples only under their family, names by the
    rules, labels quoted and escaped, no duplicate series, values numbers.
    Returns {family: {"type": ..., "samples": {(name, labels): value}}}."""
    assert text.endswith("\n"), "the text must end with a newline"
    families: dict[str, dict[str, Any]] = {}
    current = ""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        assert line and line == line.strip(), f"{where}: empty or padded"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert METRIC_NAME.fullmatch(name) and help_text, where
            assert name not in families, f"{where}: family repeated"
            families[name] = {"type": None, "samples": {}}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None and kind in TYPES, where
            families[name]["type"] = kind
            continue
        assert not line.startswith("#"), f"{where}: a comment of no known kind"
        found = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        assert found, f"{where}: not `name{{labels}} value`"
        name, _, labels_text, value = found.groups()
        assert VALUE.fullmatch(value), f"{where}: value"
        labels: list[tuple[str, str]] = []
        if labels_text:
            rest = labels_text
            while rest:
                pair = LABEL.match(rest)
                assert pair, f"{where}: labels"
                labels.append((pair.group(1), pair.group(2)))
                rest = rest[pair.end() :]
                assert rest == "" or rest.startswith(","), f"{where}: labels"
                rest = rest[1:]
            assert len({k for k, _ in labels}) == len(labels), f"{where}: a label twice"
        kind = families[current]["type"] if current else None
        allowed = {current} | ({current + s for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else set())
        assert name in allowed, f"{where}: sample outside its family {current!r}"
        if kind == "counter" and current.startswith("dynamic_nginx_"):
            assert name.endswith("_total"), f"{where}: our counters end in _total"
        key = (name, tuple(sorted(labels)))
        assert key not in seen, f"{where}: duplicate series"
        seen.add(key)
        families[current]["samples"][(name, tuple(labels))] = float(value)
    for name, family in families.items():
        if family["type"] == "histogram":
            check_histogram(name, family["samples"])
    return families


def check_histogram(name: str, found: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    """Prometheus's histogram rules: `le` buckets cumulative in rising order, ending in +Inf == _count; a _sum."""
    buckets = [(dict(labels)["le"], v) for (n, labels), v in found.items() if n == name + "_bucket"]
    assert buckets and buckets[-1][0] == "+Inf", f"{name}: the last bucket is le=+Inf"
    bounds = [float(le) for le, _ in buckets]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), f"{name}: le rising"
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), f"{name}: buckets are cumulative"
    assert found[(name + "_count", ())] == counts[-1], f"{name}: _count equals the +Inf bucket"
    assert (name + "_sum", ()) in found, f"{name}: a _sum"


def test_the_parser_rejects_what_prometheus_would() -> None:
    for bad in (
        "x 1",  # no HELP/TYPE family
        '# HELP x a\n# TYPE x gauge\nx{a="1"} one',
        "# HELP x a\n# TYPE x gauge\nx{a=1} 1",
        "# HELP x a\n# TYPE x gauge\nx 1\nx 2",
        "# HELP x-y a\n# TYPE x-y gauge\nx-y 1",
        "# HELP x a\n# TYPE x gauge\ny 1",
    ):
        with pytest.raises(AssertionError):
            parse_exposition(bad + "\n")


def samples(families: Mapping[str, Any], family: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: value for (_, labels), value in families[family]["samples"].items()}


def test_metrics_show_members_reloads_docker_and_nginx() -> None:
    families = parse_exposition(metrics.exposition(composed(), STUB))
    members = samples(families, "dynamic_nginx_upstream_members")
    assert members[(("upstream", "web.upstream"), ("state", "active"))] == 2
    assert members[(("upstream", "web.upstream"), ("state", "backup"))] == 1
    assert members[(("upstream", "api.upstream"), ("state", "active"))] == 0
    up = samples(families, "dynamic_nginx_upstream_server_up")
    assert up[(("upstream", "web.upstream"), ("server", "172.18.0.3:80"))] == 1
    assert up[(("upstream", "web.upstream"), ("server", "172.18.0.9:8080"))] == 1
    assert samples(families, "dynamic_nginx_reloads_total") == {
        (("result", "ok"),): 4,
        (("result", "invalid"),): 1,
        (("result", "failed"),): 0,
    }
    assert samples(families, "dynamic_nginx_last_reload_successful") == {(): 0}
    assert samples(families, "dynamic_nginx_last_reload_success_timestamp_seconds") == {(): 1700000000.5}
    assert samples(families, "dynamic_nginx_docker_connected") == {(): 1}
    assert samples(families, "dynamic_nginx_docker_reconnects_total") == {(): 2}
    assert samples(families, "dynamic_nginx_docker_events_total") == {
        (("action", "die"),): 1,
        (("action", "start"),): 3,
    }
    assert families["nginx_connections_accepted"]["type"] == "counter"
    assert samples(families, "nginx_connections_accepted") == {(): 17}
    assert samples(families, "nginx_http_requests_total") == {(): 42}
    assert samples(families, "nginx_up") == {(): 1}
    assert not any("id" in dict(labels) for f in families.values() for (_, labels) in f["samples"]), "no ids as labels"


def test_metrics_without_nginx_or_any_report_still_parse() -> None:
    families = parse_exposition(metrics.exposition(status.compose(None, None, {}, 0.0), None))
    assert samples(families, "nginx_up") == {(): 0}
    assert "nginx_connections_active" not in families
    assert samples(families, "dynamic_nginx_docker_connected") == {(): 0}


def test_label_values_are_escaped() -> None:
    data = composed()
    data["docker"]["events"] = {'we"ird\\\n': 1}
    families = parse_exposition(metrics.exposition(data, STUB))
    assert samples(families, "dynamic_nginx_docker_events_total") == {(("action", 'we\\"ird\\\\\\n'),): 1}


def test_stub_status_page_is_parsed() -> None:
    assert metrics.Stub(active=3, accepted=17, handled=16, requests=42, reading=0, writing=1, waiting=2) == STUB
    assert metrics.parse_stub("<html>404</html>") is None


# --- the page -------------------------------------------------------------------------------------------


def test_the_page_shows_cards_states_and_errors_in_full_escaped() -> None:
    data = composed()
    data["upstreams"][1]["members"][0]["name"] = "<script>alert(1)</script>"
    html = status_server.page(data)
    assert html.count('class="card"') == 2
    assert 'class="state state-backup"' in html and 'class="state state-active"' in html
    assert "No live container: nginx answers 503 here." in html  # api.upstream
    assert "unknown directive &#34;sever&#34; in /etc/nginx/conf.d/a.conf:3" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "API 1.41" in html and "configuration generation 4" in html
    assert html.count("<script>") == 1  # only the auto-refresh


def test_the_page_renders_before_anyone_reported() -> None:
    html = status_server.page(status.compose(None, None, {}, 0.0))
    assert "No upstreams yet." in html and "not connected" in html


# --- the setting and the nginx server block ---------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("8081", id="a port"),
        pytest.param("127.0.0.1:8081", id="loopback and port"),
        pytest.param("*:9113", id="any address"),
        pytest.param("[::1]:8081", id="IPv6"),
        pytest.param("65535", id="highest port"),
    ],
)
def test_status_listen_accepts(raw: str) -> None:
    assert S.from_env({"DYNAMIC_NGINX_STATUS_LISTEN": raw}).status_listen == raw


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("0", id="port zero"),
        pytest.param("65536", id="port too high"),
        pytest.param("08081", id="leading zero"),
        pytest.param("8081; include /etc/passwd", id="semicolon"),
        pytest.param("8081 ssl", id="a parameter"),
        pytest.param("localhost:8081", id="a host name"),
        pytest.param("300.1.1.1:8081", id="not an IPv4 address"),
        pytest.param("::1:8081", id="IPv6 without brackets"),
        pytest.param("[127.0.0.1]:8081", id="IPv4 in brackets"),
        pytest.param("８０８１", id="fullwidth digits"),
        pytest.param("8081}", id="brace"),
        pytest.param("unix:/tmp/s", id="a unix socket"),
        pytest.param("29503", id="the 503 server's port"),
        pytest.param("127.0.0.1:29504", id="the stub_status port"),
        pytest.param("8081\nserver {", id="newline"),
    ],
)
def test_status_listen_rejects(raw: str) -> None:
    with pytest.raises(S.SettingsError, match="DYNAMIC_NGINX_STATUS_LISTEN=.*internal address"):
        S.from_env({"DYNAMIC_NGINX_STATUS_LISTEN": raw})


def rendered(tmp_path: Path, listen: str) -> str:
    settings = settings_in(tmp_path, status_listen=listen)
    out = render.render_all(render.find_templates([settings.builtin_templates]), built(), settings)
    assert out.errors == {}
    return out.outputs[BUILTIN_NAME]


def test_off_the_template_renders_no_status_server(tmp_path: Path) -> None:
    assert "stub_status" not in rendered(tmp_path, "") and "status.sock" not in rendered(tmp_path, "")


@needs_nginx
def test_on_nginx_accepts_the_status_server_block(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, status_listen="127.0.0.1:18081")
    command = nginx_command(tmp_path, settings.conf_dir, server="")
    write.sync(settings.conf_dir, {BUILTIN_NAME: rendered(tmp_path, "127.0.0.1:18081")})
    text = (settings.conf_dir / BUILTIN_NAME).read_text()
    assert "listen 127.0.0.1:18081;" in text and f"http://unix:{settings.status_socket}:" in text
    result = Nginx(command, settings.nginx_pid_file).test()
    assert result.ok, result.message


# --- the server over its socket --------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    settings = settings_in(tmp_path, status_listen="8081")
    reporter = status.WatcherStatus(settings.run_dir / rundir.WATCHER_STATUS)
    reporter.synced(TWO_WEB)
    reporter.flush()
    (settings.run_dir / rundir.RELOAD_STATUS).write_text(json.dumps(RELOADS))
    sources = status_server.Sources(
        settings, environ={"DB_PASSWORD": "x", "DOCKER_HOST": "tcp://u:pw@h:2376"}, stub=lambda: STUB
    )
    server = status_server.bind(settings.status_socket, sources)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield settings.status_socket
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path):
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(str(self.path))


def get(path: Path, target: str) -> tuple[int, str, str]:
    conn = UnixConnection(path)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


def test_the_server_answers_json_metrics_page_and_404(served: Path) -> None:
    code, kind, body = get(served, "/status.json")
    assert (code, kind) == (200, "application/json")
    data = json.loads(body)
    assert set(by_name(data)["web.upstream"]) == {"shop-web-1", "shop-web-2", "shop-web-3"}
    assert data["environment"] == {"DOCKER_HOST": f"tcp://u:{status.REDACTED}@h:2376"}  # only the proxy's own
    code, kind, body = get(served, "/metrics")
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    assert samples(parse_exposition(body), "nginx_up") == {(): 1}
    code, kind, body = get(served, "/")
    assert code == 200 and kind.startswith("text/html") and "web.upstream" in body
    assert get(served, "/etc/passwd")[0] == 404
