"""`dynamic-nginx status` inside the real container, and the image's HEALTHCHECK:
healthy on a normal start, unhealthy when nginx does not answer or nginx -t has
refused the files for longer than the bound, still healthy when Docker is away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import BEHIND_SOCKET_PROXY, CONF_FOLDER, SocketProxy
from harness import PROXY, SITE, STATIC_SITE, WEB, Project, free_port, get, run, wait_for
from test_status import STATUS_PORT_IN_CONTAINER, status_json, with_status

HEALTHCHECK = "/usr/local/lib/dynamic-nginx/healthcheck"


def checked_often(compose: str, bound: int | None = None) -> str:
    """The proxy service with the image's health check run every second (and its bound
    shortened by the script's argument, as a user would in their compose file)."""
    test = f'    test: ["CMD", "{HEALTHCHECK}", "{bound}"]\n' if bound is not None else ""
    extra = (
        "    healthcheck:\n"
        + test.replace("    test", "      test")
        + "      interval: 1s\n      timeout: 3s\n      retries: 2\n      start_period: 2s\n"
    )
    head, sep, rest = compose.partition("  proxy:\n")
    lines = rest.split("\n")
    # after the proxy's `image:` line
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("image:")) + 1
    return head + sep + "\n".join(lines[:at]) + "\n" + extra.rstrip("\n") + "\n" + "\n".join(lines[at:])


def health(container: str) -> dict:
    out = run(["docker", "inspect", "-f", "{{json .State.Health}}", container]).stdout
    return json.loads(out) or {}


def health_status(container: str) -> str:
    return health(container).get("Status", "none")


def last_output(container: str) -> str:
    log = health(container).get("Log") or []
    return log[-1]["Output"].strip() if log else ""


def cli_json(p: Project) -> dict:
    return json.loads(p.exec("dynamic-nginx", "status", "--json").stdout)


def connected_members(p: Project, upstream: str = "web.upstream") -> set[str]:
    data = cli_json(p)
    if not data["docker"]["connected"]:
        return set()
    return {m["id"][:12] for u in data["upstreams"] if u["name"] == upstream for m in u["members"]}


def test_status_command_prints_the_table_without_the_listener(project):
    p: Project = project(PROXY + WEB, {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=2)
    two = p.ids("web")
    p.wait_serving(two)
    wait_for(lambda: connected_members(p) == set(two), 20, "dynamic-nginx status --json to list both replicas")
    text = p.exec("dynamic-nginx", "status").stdout
    lines = text.splitlines()
    assert any(line.startswith("Docker: connected (API ") for line in lines), text
    assert "upstream web.upstream (round_robin, 2 members)" in text, text
    rows = [line.split() for line in lines if line.startswith(f"  {p.name}")]
    assert len(rows) == 2 and all(row[1] == "active" for row in rows), text
    data = cli_json(p)
    addresses = {m["address"] for u in data["upstreams"] for m in u["members"]}
    assert all(any(address in line for line in lines) for address in addresses), text
    assert "configuration generation" in text and "last reloads" in text
    # No listener: still nothing serves the endpoints, and no status server runs.
    assert "DYNAMIC_NGINX_STATUS_LISTEN" not in data["environment"]
    assert "status.sock" not in p.exec("ls", "/run/dynamic-nginx").stdout


def test_status_json_from_the_command_is_the_served_one(project):
    status_port = free_port()
    p: Project = project(
        with_status(status_port, str(STATUS_PORT_IN_CONTAINER)),
        {"conf.d/default.conf": SITE.format(upstream="web.upstream")},
    )
    p.up(web=2)
    p.wait_serving(p.ids("web"))
    wait_for(lambda: connected_members(p) == set(p.ids("web")), 20, "the command to list both replicas")
    served, printed = status_json(status_port), cli_json(p)
    for key in ("upstreams", "excluded", "docker", "reloads", "environment"):
        assert served[key] == printed[key], key


def test_healthy_on_a_normal_start_and_unhealthy_once_nginx_stops(project):
    p: Project = project(checked_often(PROXY + WEB), {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=1)
    proxy = p.proxy_id()
    p.wait_serving(p.ids("web"))
    wait_for(lambda: health_status(proxy) == "healthy", 30, "the proxy to be healthy")
    assert last_output(proxy) == "healthy"
    assert json.loads(
        run(
            [
                "docker",
                "image",
                "inspect",
                "-f",
                "{{json .Config.Healthcheck.Test}}",
                run(["docker", "inspect", "-f", "{{.Image}}", proxy]).stdout.strip(),
            ]
        ).stdout
    ) == ["CMD", HEALTHCHECK], "the image's own check ran"
    # Stopped through supervisord, nginx stays down (no restart, no fatal stop).
    p.exec("supervisorctl", "stop", "nginx")
    wait_for(lambda: health_status(proxy) == "unhealthy", 30, "the proxy to be unhealthy")
    assert "nginx does not accept connections" in last_output(proxy), last_output(proxy)


def test_unhealthy_once_nginx_t_refuses_the_files_longer_than_the_bound(project):
    p: Project = project(
        checked_often(PROXY + WEB, bound=4), {"conf.d/default.conf": SITE.format(upstream="web.upstream")}
    )
    p.up(web=1)
    proxy = p.proxy_id()
    p.wait_serving(p.ids("web"))
    wait_for(lambda: health_status(proxy) == "healthy", 30, "the proxy to be healthy")
    bad = p.folder / "conf.d" / "broken.conf"
    bad.write_text("sever { }\n")
    wait_for(lambda: "refuses the configuration" in last_output(proxy), 30, "the check to notice the refusal")
    assert health_status(proxy) == "healthy", "within the bound"
    wait_for(lambda: health_status(proxy) == "unhealthy", 30, "the proxy to be unhealthy after the bound")
    output = last_output(proxy)
    assert "nginx -t has refused the configuration" in output and "sever" in output, output
    assert get(p.port)[0] == 200, "nginx still serves its last good configuration"
    bad.unlink()
    wait_for(lambda: health_status(proxy) == "healthy", 30, "the proxy to be healthy again once fixed")


@pytest.fixture
def socket_proxy(tmp_path: Path) -> Iterator[SocketProxy]:
    proxy = SocketProxy(tmp_path / "docker-socket")
    yield proxy
    proxy.remove()


def test_stays_healthy_while_docker_is_unreachable(project, socket_proxy):
    compose = BEHIND_SOCKET_PROXY.replace("SOCKET_FOLDER", str(socket_proxy.folder)).replace("CONF", CONF_FOLDER)
    socket_proxy.start()
    p: Project = project(checked_often(compose), {"conf.d/default.conf": STATIC_SITE})
    p.up(app=1)
    proxy = p.proxy_id()
    wait_for(lambda: health_status(proxy) == "healthy", 30, "the proxy to be healthy")
    wait_for(lambda: cli_json(p)["docker"]["connected"], 30, "the watcher to reach Docker")
    socket_proxy.stop()
    wait_for(lambda: not cli_json(p)["docker"]["connected"], 30, "the status to say Docker is away")
    assert "Docker: NOT connected" in p.exec("dynamic-nginx", "status").stdout
    before = {c["Start"] for c in health(proxy).get("Log") or []}

    def checks_since() -> list[dict]:
        return [c for c in health(proxy).get("Log") or [] if c["Start"] not in before]

    wait_for(lambda: len(checks_since()) >= 4, 60, "four health checks while Docker is away")  # Docker keeps 5
    assert all(c["ExitCode"] == 0 for c in checks_since()), checks_since()
    assert health_status(proxy) == "healthy"
    assert get(p.port, "/static")[0] == 200
