"""The status endpoints through the real image: status.json, /metrics and the page
on DYNAMIC_NGINX_STATUS_LISTEN, and nothing at all when it is unset."""

from __future__ import annotations

import http.client
import json
import re

from harness import PROXY, SITE, WEB, Project, free_port, get, rendered_servers, wait_for

STATUS_PORT_IN_CONTAINER = 8081


def with_status(host_port: int, listen: str | None) -> str:
    """The harness's proxy, with the status port published on 127.0.0.1 and the listener set (or not)."""
    text = PROXY.replace(
        'ports: ["127.0.0.1:{port}:80"]',
        f'ports: ["127.0.0.1:{{port}}:80", "127.0.0.1:{host_port}:{STATUS_PORT_IN_CONTAINER}"]',
    )
    if listen is not None:
        text += f'    environment:\n      DYNAMIC_NGINX_STATUS_LISTEN: "{listen}"\n'
    return text + WEB


def fetch(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


def status_json(port: int) -> dict:
    code, _, body = fetch(port, "/status.json")
    assert code == 200, body
    return json.loads(body)


def listed(port: int) -> set[str]:
    """Short ids of web.upstream's members once the watcher follows Docker (the start-up
    render reports before it does); none while the status server is still starting (502)."""
    code, _, body = fetch(port, "/status.json")
    data = json.loads(body) if code == 200 else {}
    return set(members(data)) if data and data["docker"]["connected"] else set()


def members(data: dict, upstream: str = "web.upstream") -> dict[str, dict]:
    found = {u["name"]: u for u in data["upstreams"]}
    return {m["id"][:12]: m for m in found[upstream]["members"]} if upstream in found else {}


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")


def metric_samples(text: str) -> dict[tuple[str, str], float]:
    """(name, labels text) -> value; every line is a HELP, a TYPE or a well-formed sample
    (the unit tests hold the strict parser; here the real output must still parse)."""
    found = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        found[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return found


def test_status_json_metrics_and_page_follow_a_scale_change(project):
    status_port = free_port()
    p: Project = project(
        with_status(status_port, str(STATUS_PORT_IN_CONTAINER)),
        {"conf.d/default.conf": SITE.format(upstream="web.upstream")},
    )
    p.up(web=2)
    two = p.ids("web")
    p.wait_serving(two)
    wait_for(lambda: listed(status_port) == set(two), 20, "status.json to list both replicas")
    data = status_json(status_port)
    for m in members(data).values():
        assert m["state"] == "active" and m["service"] == "web" and m["project"] == p.name
        assert m["network"] == f"{p.name}_default"
        assert m["name"].startswith(f"{p.name}_web_") or m["name"].startswith(f"{p.name}-web-")
    assert {m["address"] for m in members(data).values()} == set(rendered_servers(p))  # the file nginx runs
    assert data["docker"]["connected"] is True and data["docker"]["api_version"]
    assert data["excluded"] == []

    p.up(web=3)  # the scaled change
    three = p.ids("web")
    p.wait_serving(three)
    wait_for(lambda: listed(status_port) == set(three), 20, "status.json to list three")
    data = status_json(status_port)
    assert data["reloads"]["totals"]["ok"] >= 1 and data["reloads"]["recent"][0]["result"] == "ok"
    assert data["docker"]["events"].get("start", 0) >= 1

    code, kind, text = fetch(status_port, "/metrics")
    assert code == 200 and kind.startswith("text/plain; version=0.0.4")
    samples = metric_samples(text)
    assert samples[("dynamic_nginx_upstream_members", 'upstream="web.upstream",state="active"')] == 3
    ups = [k for k in samples if k[0] == "dynamic_nginx_upstream_server_up" and 'upstream="web.upstream"' in k[1]]
    assert len(ups) == 3
    assert samples[("dynamic_nginx_reloads_total", 'result="ok"')] >= 1
    assert samples[("dynamic_nginx_docker_connected", "")] == 1
    assert samples[("nginx_up", "")] == 1
    assert samples[("nginx_http_requests_total", "")] > 0  # wait_serving's requests at least
    assert samples[("nginx_connections_accepted", "")] > 0

    code, kind, html = fetch(status_port, "/")
    assert code == 200 and kind.startswith("text/html")
    assert "web.upstream" in html and html.count("state state-active") == 3
    assert fetch(status_port, "/nothing-here")[0] == 404
    # The site itself is untouched: the status server is not on its path.
    assert get(p.port)[0] == 200


def test_with_the_listener_off_nothing_answers_and_no_server_runs(project):
    status_port = free_port()
    p: Project = project(with_status(status_port, None), {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    # Published by Docker, but nothing listens behind it in the container.
    code = None
    try:
        code = fetch(status_port, "/status.json")[0]
    except (OSError, http.client.HTTPException):
        pass
    assert code is None, f"something answered on the status port: {code}"
    listening = p.exec("sh", "-c", "cat /proc/net/tcp /proc/net/tcp6").stdout
    for port in (STATUS_PORT_IN_CONTAINER, 29504):  # the listener, nginx's stub_status
        assert f":{port:04X} " not in listening
    programs = p.exec("supervisorctl", "status", check=False).stdout
    assert re.search(r"^status\s+EXITED", programs, re.M), programs
    # The status files are written anyway (for `dynamic-nginx status`); the socket is not.
    assert p.exec("sh", "-c", "ls /run/dynamic-nginx/status.sock 2>/dev/null", check=False).stdout == ""
    assert "stub_status" not in p.exec("cat", "/etc/nginx/conf.d/dynamic-nginx-upstreams.conf").stdout
    # The whole configuration nginx runs (every file it includes) has no status server either,
    running = p.exec("nginx", "-T").stdout
    assert "nginx.conf" in running and "dynamic-nginx-upstreams.conf" in running, running[:2000]
    for absent in ("stub_status", "status.sock", f"listen {STATUS_PORT_IN_CONTAINER}", "listen 127.0.0.1:29504"):
        assert absent not in running, absent
    # and no process of the container is the status server.
    commands = p.exec(
        "sh", "-c", "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done 2>/dev/null; true"
    ).stdout
    assert "dynamic_nginx watch" in commands and "status-server" not in commands, commands
    assert not re.search(r"^status: ", p.logs(), re.M)  # no line from the status server
