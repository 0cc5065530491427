"""Issue 12's demo through the real image against a real dockerd, started once for the module:
a healthy, a starting, an unhealthy, a bad-label and a no-shared-network container behind one
proxy with DYNAMIC_NGINX_STATUS_LISTEN on. For that one demo: status.json's states and reasons,
/metrics, `dynamic-nginx explain` (text and --json) for each of the five, the page in headless
chromium (read from the DOM chromium built, and a screenshot checked for what it contains, not
compared by pixels), and the status server asleep while nobody asks it."""

from __future__ import annotations

import http.client
import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SITE, Project, free_port, record, rendered_servers, wait_for
from test_explain import COMPOSE, explain, health, inspect, step
from test_status import STATUS_PORT_IN_CONTAINER, fetch, metric_samples, status_json
from test_status_cli import cli_json
from test_status_page_browser import Cells, chromium

SERVICES = ("good", "slow", "sick", "bad", "lonely")
# Why each of the four is left out: the reason code the model, the metrics, explain and the log share.
REASONS = {
    "slow": "health_starting",
    "sick": "unhealthy",
    "bad": "label_invalid:dynamic-nginx.port",
    "lonely": "no_shared_network",
}
ACTIVE_GREEN = (0x1F, 0x8A, 0x4C)  # the page's .state-active badge


def container_servers(p: Project) -> list[str]:
    """The `server` addresses nginx runs, without the built-in 503 server of the upstreams no container is in."""
    return [address for address in rendered_servers(p) if not address.startswith("127.")]


def the_member(data: dict) -> dict:
    """good.upstream's one member (the other upstreams have none)."""
    (member,) = (m for u in data["upstreams"] if u["name"] == "good.upstream" for m in u["members"])
    return member


def demo_compose() -> str:
    """test_explain's demo, with the status listener on all of the container's addresses and
    published on 127.0.0.1, so the host's chromium can load the page."""
    text = COMPOSE.replace('DYNAMIC_NGINX_STATUS_LISTEN: "127.0.0.1:8081"', 'DYNAMIC_NGINX_STATUS_LISTEN: "8081"')
    text = text.replace(
        'ports: ["127.0.0.1:{port}:80"]',
        f'ports: ["127.0.0.1:{{port}}:80", "127.0.0.1:{{status_port}}:{STATUS_PORT_IN_CONTAINER}"]',
    )
    assert "{status_port}" in text and '"8081"' in text, "test_explain's demo changed shape"
    return text


class Demo:
    """The running demo: its project, the status port published on the host, each service's container."""

    def __init__(self, project: Project, status_port: int):
        self.p = project
        self.status_port = status_port
        self.ids = {service: project.ids(service, full=True)[0] for service in SERVICES}
        self.names = {service: inspect(i)["Name"].lstrip("/") for service, i in self.ids.items()}

    def reasons(self) -> dict[str, str]:
        """service -> reason code of each left-out container, once the watcher follows Docker."""
        try:
            code, _, body = fetch(self.status_port, "/status.json")
        except (OSError, http.client.HTTPException):
            return {}  # the listener is not up yet
        data = json.loads(body) if code == 200 else {}
        if not data or not data["docker"]["connected"]:
            return {}
        service_of = {i: s for s, i in self.ids.items()}
        return {service_of.get(e["id"], e["name"]): e["reason"] for e in data["excluded"]}


@pytest.fixture(scope="module")
def demo(images: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The five containers, up once; every test of this module reads the same demo and changes nothing."""
    status_port = free_port()
    p = Project(
        tmp_path_factory.mktemp("demo"),
        demo_compose(),
        {"conf.d/default.conf": SITE.format(upstream="good.upstream")},
        values={"status_port": status_port},
    )
    try:
        p.up()
        d = Demo(p, status_port)
        p.wait_serving([d.ids["good"][:12]], timeout=60)
        wait_for(lambda: health(d.ids["sick"]) == "unhealthy", 60, "the sick container to be unhealthy")
        wait_for(lambda: d.reasons() == REASONS, 60, "status.json to give the four reasons")
        assert health(d.ids["slow"]) == "starting", "its start period is long: it stays starting"
        yield d
    finally:
        p.down()


def test_status_json_gives_each_containers_state_and_reason(demo: Demo):
    data = status_json(demo.status_port)
    members = [(u["name"], m) for u in data["upstreams"] for m in u["members"]]
    assert [(name, m["id"]) for name, m in members] == [("good.upstream", demo.ids["good"])], members
    good = members[0][1]
    assert good["state"] == "active" and good["health"] == "healthy" and good["service"] == "good"
    assert good["name"] == demo.names["good"] and good["network"] == f"{demo.p.name}_default"
    assert [good["address"]] == container_servers(demo.p), "the `server` line nginx runs"
    assert good["server"].startswith(f"server {good['address']}")

    excluded = {e["id"]: e for e in data["excluded"]}
    assert set(excluded) == {demo.ids[s] for s in REASONS}, "the four, and nothing else (not the proxy)"
    for service, reason in REASONS.items():
        entry = excluded[demo.ids[service]]
        assert entry["reason"] == reason and entry["service"] == service, entry
        assert entry["name"] == demo.names[service] and entry["project"] == demo.p.name
        assert entry["detail"], f"{service}: a reason in words too"
    assert "starting" in excluded[demo.ids["slow"]]["detail"]
    assert "dynamic-nginx.port" in excluded[demo.ids["bad"]]["detail"]
    assert f"{demo.p.name}_elsewhere" in excluded[demo.ids["lonely"]]["detail"]

    # Reloads there may be none: the start-up render can already hold all five.
    assert data["docker"]["connected"] is True and data["reloads"]["totals"]["invalid"] == 0
    assert data["environment"]["DYNAMIC_NGINX_STATUS_LISTEN"] == "8081"
    printed = cli_json(demo.p)  # `dynamic-nginx status --json` inside the container: the same story
    assert printed["upstreams"] == data["upstreams"] and printed["excluded"] == data["excluded"]


def test_metrics_count_members_and_reasons(demo: Demo):
    code, kind, text = fetch(demo.status_port, "/metrics")
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    samples = metric_samples(text)
    typed = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for name, _ in samples:  # every sample belongs to a declared family
        assert name in typed or re.sub(r"_(bucket|sum|count)$", "", name) in typed, name

    good = the_member(status_json(demo.status_port))
    assert samples[("dynamic_nginx_upstream_members", 'upstream="good.upstream",state="active"')] == 1
    assert samples[("dynamic_nginx_upstream_members", 'upstream="good.upstream",state="starting"')] == 0
    assert [k for k in samples if k[0] == "dynamic_nginx_upstream_server_up"] == [
        ("dynamic_nginx_upstream_server_up", f'upstream="good.upstream",server="{good["address"]}"')
    ]
    excluded = {k[1]: v for k, v in samples.items() if k[0] == "dynamic_nginx_excluded_containers"}
    assert excluded == {f'reason="{reason}"': 1 for reason in REASONS.values()}
    assert samples[("dynamic_nginx_docker_connected", "")] == 1
    assert samples[("dynamic_nginx_reloads_total", 'result="invalid"')] == 0
    assert samples[("dynamic_nginx_event_to_applied_seconds_bucket", 'le="+Inf"')] >= 0
    assert samples[("nginx_up", "")] == 1 and samples[("nginx_http_requests_total", "")] > 0
    # Bounded labels: no container id or name is a label value.
    for service in SERVICES:
        assert demo.ids[service][:12] not in text and demo.names[service] not in text, service


def test_explain_tells_each_of_the_five_what_the_status_says(demo: Demo):
    data = status_json(demo.status_port)
    member = the_member(data)
    good = explain(demo.p, demo.names["good"])
    assert step(good, "verdict") == "ok  verdict    in: a member of good.upstream"
    assert step(good, "upstream").startswith(f"ok  upstream   good.upstream: {member['server']}")
    assert step(good, "watcher").startswith("ok  watcher    the running watcher has it in good.upstream: ")
    assert re.fullmatch(
        rf"ok  connect    {re.escape(member['address'])} from the proxy: connected in [0-9.]+ ms", step(good, "connect")
    )

    details = {e["id"]: e["detail"] for e in data["excluded"]}
    for service, reason in REASONS.items():
        text = explain(demo.p, demo.names[service])
        detail = details[demo.ids[service]]
        assert step(text, "verdict").startswith(f"NO  verdict    out: {reason}: "), (service, text)
        assert step(text, "watcher").startswith(f"NO  watcher    the running watcher has it out: {reason}"), text
        if service in ("slow", "sick"):
            assert step(text, "verdict") == f"NO  verdict    out: {reason}: {detail}", (text, detail)
    assert step(explain(demo.p, demo.names["slow"]), "health") == "NO  health     its health check says starting"
    assert step(explain(demo.p, demo.names["bad"]), "labels").startswith("NO  labels     invalid: label_invalid:")
    assert step(explain(demo.p, demo.names["lonely"]), "network").startswith("NO  network    no_shared_network: ")


def test_explain_json_gives_the_reason_codes_of_the_status(demo: Demo):
    details = {e["id"]: e["detail"] for e in status_json(demo.status_port)["excluded"]}
    for service in SERVICES:
        report = json.loads(demo.p.exec("dynamic-nginx", "explain", demo.names[service], "--json").stdout)
        assert report["found"] is True and report["taken_as"] == "container", report
        (container,) = report["containers"]
        assert container["id"] == demo.ids[service] and container["service"] == service
        if service == "good":
            assert (container["member_of"], container["reason"]) == (["good.upstream"], None), container
        else:
            assert container["member_of"] == [] and container["reason"] == REASONS[service], container
            assert container["detail"] == details[demo.ids[service]]
        steps = {s["name"]: s for s in container["steps"]}
        assert steps["verdict"]["ok"] is (service == "good") and steps["connect"]["text"]
        assert steps["connect"]["ok"] is (True if service in ("good", "slow", "sick") else None), steps["connect"]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB or RGBA, non-interlaced PNG (what chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, chunks, header = 8, [], b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    size = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * size
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - size] if x >= size else 0
            b = previous[x]
            c = previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line) if size == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3))
        previous = line
    return width, height, rows


def test_the_page_in_chromium_shows_the_member_and_the_four_left_out(demo: Demo, tmp_path: Path):
    url = f"http://127.0.0.1:{demo.status_port}/"
    page = Cells()
    page.feed(chromium("--dump-dom", url))
    members = [row for row in page.rows if len(row) == 5 and row[0] in demo.names.values()]
    assert len(members) == 1 and members[0][0] == demo.names["good"], page.rows
    assert members[0][1] == "active" and members[0][3] == "healthy", members
    assert [members[0][2].split()[0]] == container_servers(demo.p)
    assert page.classes.count("state-active") == 1
    left_out = {row[0]: row for row in page.rows if len(row) == 4 and row[0] in demo.names.values()}
    assert set(left_out) == {demo.names[s] for s in REASONS}, page.rows
    details = {e["id"]: e["detail"] for e in status_json(demo.status_port)["excluded"]}
    for service, reason in REASONS.items():
        row = left_out[demo.names[service]]
        assert row[1:] == [service, reason, " ".join(details[demo.ids[service]].split())], row
    assert "excluded" in page.classes  # the greyed table

    shot = tmp_path / "status-page.png"
    chromium("--window-size=1280,1040", f"--screenshot={shot}", url)  # the last size given wins: the whole page
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 1040)
    colours = {row[x : x + 3] for row in rows[::3] for x in range(0, len(row), 9)}
    assert len(colours) > 20, "the screenshot is blank or nearly so"
    green = bytes(ACTIVE_GREEN)
    badge = sum(row[x : x + 3] == green for row in rows for x in range(0, len(row), 3))
    assert badge > 100, f"no active-state badge on the screenshot ({badge} pixels of its colour)"
    record("status page screenshot of the five-container demo", str(shot))


def test_between_requests_the_status_server_sleeps(demo: Demo):
    """On but not asked, the status program is never woken: no CPU taken per second, and none per proxied
    request (nginx passes it only the listener's requests). Context switches count every wake-up."""
    script = (
        # supervisord's program is run-status (sh); the server is its one child.
        "set -- $(cat /proc/$(supervisorctl pid status)/task/*/children); pid=$1; "
        "grep -q status-server /proc/$pid/cmdline || exit 3; "
        "switches() { cat /proc/$pid/task/*/status | awk '/ctxt_switches/ {n += $2} END {print n}'; }; "
        "switches; sleep 6; switches"
    )
    before, after = (int(n) for n in demo.p.exec("sh", "-c", script).stdout.split())
    assert after - before <= 1, f"the idle status server woke {after - before} times in 6 s"
