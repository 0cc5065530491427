"""Rollback: a conf.d this image wrote into still starts plain nginx once the image is gone.

The proxy runs with a bind-mounted conf.d and a site that proxies to
`web.upstream`; it is stopped (cleanly, or killed), and then this project's
image runs on the same conf.d with the official image's command line and our
entrypoint bypassed: `--entrypoint nginx IMAGE -g 'daemon off;'`, exactly
plain nginx with the same nginx.conf. `--tmpfs /run` gives it an empty /run,
as the official image has: nothing this image made outside conf.d (such as
/run/dynamic-nginx) is there to lean on.
"""

from __future__ import annotations

import pytest
from harness import IMAGE, PROXY, SITE, WEB, Project, free_port, get, run, tally, wait_for


def rolled_back(p: Project) -> tuple[str, int]:
    """Start plain nginx on the proxy's conf.d, on the project's network; its container name and port."""
    name = f"{p.name}-plain"
    port = free_port()
    run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--network",
            f"{p.name}_default",
            "-p",
            f"127.0.0.1:{port}:80",
            "--tmpfs",
            "/run",
            "-v",
            f"{p.folder / 'conf.d'}:/etc/nginx/conf.d",
            "--entrypoint",
            "nginx",
            IMAGE,
            "-g",
            "daemon off;",
        ]
    )
    return name, port


def state(name: str) -> str:
    return run(["docker", "inspect", "-f", "{{.State.Status}}", name]).stdout.strip()


def answers(name: str, port: int, count: int = 20) -> dict[str, int]:
    """What plain nginx answers, once it answers at all; fails with its log if it exited."""

    def up() -> bool:
        if state(name) != "running":
            log = run(["docker", "logs", name], check=False)
            raise AssertionError(f"plain nginx exited on this conf.d:\n{log.stdout}{log.stderr}")
        return get(port, timeout=2)[0] != 0  # any HTTP answer

    wait_for(up, 20, "plain nginx to answer")
    return dict(tally(port, count))


@pytest.mark.parametrize("stop", ["stop", "kill"])
def test_plain_nginx_starts_on_the_conf_d_and_serves_the_last_replicas(project, stop: str) -> None:
    """The generated file keeps the replicas it last listed: they still run (only the proxy
    stopped), so plain nginx serves them, as a static config would."""
    p = project(PROXY + WEB, {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=2)
    replicas = p.ids("web")
    p.wait_serving(replicas)
    run(["docker", stop, p.proxy_id()], timeout=60)
    name, port = rolled_back(p)
    try:
        counts = answers(name, port, 40)
        assert set(counts) == set(replicas), counts
        assert state(name) == "running"
    finally:
        run(["docker", "rm", "-f", name], check=False)


@pytest.mark.parametrize("stop", ["stop", "kill"])
def test_plain_nginx_answers_503_for_an_upstream_with_no_replica(project, stop: str) -> None:
    """An upstream without live containers points at the 503 server, which the generated file
    itself defines on loopback: plain nginx runs it too."""
    p = project(PROXY + WEB, {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    p.up(web=0)
    wait_for(lambda: get(p.port)[0] == 503, 20, "503 with no replica")
    run(["docker", stop, p.proxy_id()], timeout=60)
    name, port = rolled_back(p)
    try:
        assert answers(name, port) == {"status:503": 20}
    finally:
        run(["docker", "rm", "-f", name], check=False)
