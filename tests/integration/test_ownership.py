"""Ownership through the real image: `app.upstream` is app's even while app runs no container.

A service labelled `dynamic-nginx.upstream: app` must never take app's traffic:
not while app runs, not when app is scaled to 0 (then nginx answers 503), and
the refusal is logged once with both sides named.
"""

from __future__ import annotations

from harness import PROXY, SITE, Load, Project, get, record, run, wait_for

SERVICES = """  app:
    image: {backend}
  intruder:
    image: {backend}
    labels:
      dynamic-nginx.upstream: app
"""
REFUSED = "which belongs to service app"


def refusals(p: Project) -> list[str]:
    return [line for line in p.logs().splitlines() if "intruder" in line and REFUSED in line]


def test_a_service_scaled_to_zero_keeps_its_upstream_from_an_intruder(project):
    p = project(PROXY + SERVICES, {"conf.d/default.conf": SITE.format(upstream="app.upstream")})
    p.up(app=1, intruder=1)
    (app,) = p.ids("app")
    (intruder,) = p.ids("intruder")
    p.wait_serving([app])
    # 503s come back at once, so the request bound is generous; the time bound is what stops it.
    with Load(p.port, clients=2, max_requests=200_000, max_seconds=150) as load:
        wait_for(lambda: len(load.snapshot()) >= 50, 30, "requests before the scale-down")
        p.up(app=0, intruder=1)
        # The watcher saw the removal once nothing answers 200 any more.
        wait_for(lambda: [o.status for o in load.snapshot()[-20:]] == [503] * 20, 60, "503 after app left")
        gone = len(load.snapshot())
        wait_for(lambda: len(load.snapshot()) >= gone + 200, 60, "requests while app is at 0")
        at_zero = load.snapshot()[gone:]
        p.up(app=1, intruder=1)
        (back,) = p.ids("app")
        wait_for(lambda: back in load.served_by(len(load.snapshot()) - 20), 60, "app back")
        returned = len(load.snapshot())
        wait_for(lambda: len(load.snapshot()) >= returned + 100, 60, "requests after app came back")
    outcomes = load.snapshot()
    record("ownership_requests_at_zero", len(at_zero))
    assert intruder not in {o.body for o in outcomes}, "the intruder answered"
    assert {o.status for o in at_zero} == {503}, {o.status for o in at_zero}
    assert {o.body for o in outcomes[returned:] if o.status == 200} == {back}
    lines = refusals(p)
    assert lines, p.logs()[-3000:]
    assert all("watcher: ERROR" in line or "watcher" in line for line in lines)
    assert "intruder" in lines[0] and "app.upstream" in lines[0] and "dynamic-nginx.upstream" in lines[0]


def test_before_its_first_start_and_after_a_proxy_restart_app_upstream_stays_apps(project):
    """`compose up` creates every service's containers before it starts any: app owns its name
    from then on, though it has never run. A scale to 0 removes app's containers; a proxy
    restarted after that still knows app (kept in its run dir)."""
    p = project(PROXY + SERVICES, {"conf.d/default.conf": SITE.format(upstream="app.upstream")})
    p.compose("up", "--no-start")
    p.compose("start", "proxy", "intruder")
    (intruder,) = p.ids("intruder")
    wait_for(lambda: refusals(p), 30, "the intruder refused")
    wait_for(lambda: get(p.port)[0] != 0, 30, "nginx answering")
    with Load(p.port, clients=2, max_requests=400, max_seconds=60) as load:
        wait_for(lambda: len(load.snapshot()) >= 100, 30, "requests before app's first start")
    assert {o.status for o in load.snapshot()} == {503}, "app.upstream must answer 503 until app runs"
    p.compose("start", "app")
    (app,) = p.ids("app")
    p.wait_serving([app])
    p.up(app=0, intruder=1)
    wait_for(lambda: get(p.port)[0] == 503, 30, "503 with app at 0")
    run(["docker", "restart", "-t", "5", p.proxy_id()])
    wait_for(lambda: get(p.port)[0] != 0, 30, "the proxy back")
    with Load(p.port, clients=2, max_requests=400, max_seconds=60) as load:
        wait_for(lambda: len(load.snapshot()) >= 100, 30, "requests after the proxy restart")
    assert intruder not in {o.body for o in load.snapshot()}, "the intruder answered after the restart"
    assert {o.status for o in load.snapshot()} == {503}
