"""`dynamic-nginx explain` through the real image against a real dockerd, for the issue's
demo: a healthy, a starting (its HEALTHCHECK passes only once the test lets it), an unhealthy, a
bad-label and a no-shared-network container. Also the decision log lines carrying the same reason
codes, and the event-to-applied histogram once the starting one turns healthy."""

from __future__ import annotations

import json
import re

from harness import PROXY, SITE, Project, poll, record, run, wait_for
from test_privilege import ALLOWED, behind, calls, socket_proxy  # noqa: F401 (socket_proxy: a fixture)

STATUS_LISTEN = "127.0.0.1:8081"
# Checks that pass get a long timeout and retries: on a loaded host an exec can take seconds,
# and one slow `true` would make the healthy container unhealthy for a while.
HEALTHY_WHEN_FILE = """    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 1s
      timeout: 20s
      retries: 5
"""
COMPOSE = (
    PROXY
    + f'    environment:\n      DYNAMIC_NGINX_STATUS_LISTEN: "{STATUS_LISTEN}"\n'
    + """  good:
    image: {backend}
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 20s
      retries: 5
  slow:
    image: {backend}
"""
    + HEALTHY_WHEN_FILE
    + """      start_period: 600s
  sick:
    image: {backend}
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      timeout: 1s
      retries: 1
  bad:
    image: {backend}
    labels:
      dynamic-nginx.port: "http"
  lonely:
    image: {backend}
    networks: [elsewhere]
networks:
  elsewhere:
    driver: bridge
"""
)


def inspect(container_id: str) -> dict:
    return json.loads(run(["docker", "inspect", container_id]).stdout)[0]


def health(container_id: str) -> str:
    return ((inspect(container_id)["State"].get("Health") or {}).get("Status")) or "none"


def explain(p: Project, target: str) -> str:
    result = p.exec("dynamic-nginx", "explain", target, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def step(text: str, name: str) -> str:
    """Step `name`'s line, with its mark (`ok`, `NO`, `--`)."""
    found = [line.strip() for line in text.splitlines() if re.match(rf"\s+(ok|NO|--)\s+{name}\s", line)]
    assert found, f"no {name} step in:\n{text}"
    return found[0]


def metric(p: Project, name: str) -> float | None:
    """One sample of /metrics, fetched inside the proxy's container from the status listener."""
    script = f"import urllib.request; print(urllib.request.urlopen('http://{STATUS_LISTEN}/metrics', timeout=5).read().decode())"
    text = p.exec("python3", "-c", script, check=False).stdout
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def test_explain_and_the_log_tell_each_containers_story(project):
    p: Project = project(COMPOSE, {"conf.d/default.conf": SITE.format(upstream="good.upstream")})
    p.up()
    ids = {service: p.ids(service)[0] for service in ("good", "slow", "sick", "bad", "lonely")}
    names = {service: inspect(i)["Name"].lstrip("/") for service, i in ids.items()}
    p.wait_serving([ids["good"]])
    wait_for(lambda: health(ids["sick"]) == "unhealthy", 30, "the sick container to be unhealthy")
    # explain shows the running watcher's decision too: let it take in the health_status event first.
    wait_for(lambda: f"container {names['sick']}: out (unhealthy)" in p.logs(), 30, "the watcher to see it")
    assert health(ids["slow"]) == "starting"

    good = explain(p, names["good"])
    assert step(good, "scope") == f"ok  scope      yes: in the proxy's compose project {p.name}"
    assert step(good, "port") == "ok  port       8000: the only port its image exposes"
    assert step(good, "health") == "ok  health     its health check says healthy"
    assert re.fullmatch(
        r"ok  upstream   good\.upstream: server \d+\.\d+\.\d+\.\d+:8000 .*;  # \S+", step(good, "upstream")
    )
    assert step(good, "verdict") == "ok  verdict    in: a member of good.upstream"
    assert step(good, "watcher").startswith("ok  watcher    the running watcher has it in good.upstream: server ")
    assert re.fullmatch(r"ok  connect    \S+:8000 from the proxy: connected in [0-9.]+ ms", step(good, "connect"))

    slow = explain(p, names["slow"])
    assert step(slow, "health") == "NO  health     its health check says starting"
    assert step(slow, "verdict") == "NO  verdict    out: health_starting: its health check says starting"
    # It listens already: only its health check keeps it out, and the connect says so.
    assert re.fullmatch(r"ok  connect    \S+:8000 from the proxy: connected in [0-9.]+ ms", step(slow, "connect"))

    sick = explain(p, names["sick"])
    assert step(sick, "state") == "ok  state      Docker says it is running"
    assert step(sick, "verdict") == "NO  verdict    out: unhealthy: its health check says unhealthy"
    assert (
        step(sick, "watcher")
        == "NO  watcher    the running watcher has it out: unhealthy: its health check says unhealthy"
    )

    bad = explain(p, names["bad"])
    assert step(bad, "labels").startswith("NO  labels     invalid: label_invalid:dynamic-nginx.port: ")
    assert "dynamic-nginx.port" in step(bad, "labels") and "http" in step(bad, "labels")
    assert step(bad, "verdict").startswith("NO  verdict    out: label_invalid:dynamic-nginx.port: ")
    assert step(bad, "connect") == "--  connect    not tried: no address was chosen"

    lonely = explain(p, names["lonely"])
    assert step(lonely, "network").startswith("NO  network    no_shared_network: ")
    assert f"{p.name}_elsewhere" in step(lonely, "network")
    assert step(lonely, "verdict").startswith("NO  verdict    out: no_shared_network: ")
    assert step(lonely, "connect") == "--  connect    not tried: no address was chosen"

    # A service by its name: each of its containers; an unknown name: exit 1 and what there is.
    assert explain(p, "good").startswith("service good: 1 container(s)\ncontainer ")
    unknown = p.exec("python3", "-m", "dynamic_nginx", "explain", "nothing-by-that-name", check=False)
    assert unknown.returncode == 1 and "has the services" in unknown.stdout

    # The log tells the same story, with the same reason codes, once each.
    logs = p.logs()
    for service, line in (
        ("good", f"container {names['good']}: in good.upstream: server "),
        ("slow", f"container {names['slow']}: out (health_starting): its health check says starting"),
        ("sick", f"container {names['sick']}: out (unhealthy): its health check says unhealthy"),
        ("bad", f"container {names['bad']}: out (label_invalid:dynamic-nginx.port); the line above says why"),
        ("lonely", f"container {names['lonely']}: out (no_shared_network)"),
    ):
        assert line in logs, f"{service}: no {line!r} in\n{logs}"
    about_sick = [line for line in logs.splitlines() if names["sick"] in line]
    assert sum(f"container {names['sick']}: out (unhealthy)" in line for line in about_sick) == 1, about_sick

    # The starting one passes its check: it joins, the log says so, and the histogram counts it.
    before = metric(p, "dynamic_nginx_event_to_applied_seconds_count") or 0.0
    p.compose("exec", "-T", "slow", "touch", "/tmp/healthy")
    wait_for(lambda: f"container {names['slow']}: in slow.upstream: server " in p.logs(), 30, "slow to join")
    assert step(explain(p, names["slow"]), "verdict") == "ok  verdict    in: a member of slow.upstream"
    counted = poll(lambda: (metric(p, "dynamic_nginx_event_to_applied_seconds_count") or 0.0) > before, 20)
    assert counted, "the health_status event's reload was not observed"
    total = metric(p, "dynamic_nginx_event_to_applied_seconds_sum") or 0.0
    count = metric(p, "dynamic_nginx_event_to_applied_seconds_count") or 0.0
    assert total > 0 and count > 0
    record("event_to_applied_seconds_mean (health_status -> reload confirmed)", round(total / count, 3))


def test_explain_makes_only_the_read_calls_of_the_socket_proxy_allow_list(project, socket_proxy):  # noqa: F811
    proxy = socket_proxy(allow=ALLOWED)
    proxy.start()
    p = behind(project, proxy)
    p.up(app=1)
    p.wait_serving(p.ids("app"))
    before = len(calls(proxy))
    text = explain(p, "app")
    assert step(text, "verdict") == "ok  verdict    in: a member of app.upstream", text
    seen = calls(proxy)[before:]
    assert seen, "explain asked Docker nothing through the socket proxy"
    assert [c for c in seen if c[2] != "forwarded"] == [], seen
    assert all(any(re.fullmatch(a, f"{m} {path}") for a in ALLOWED) for m, path, _ in seen), seen
