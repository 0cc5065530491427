"""/metrics: the status model and nginx's stub_status as Prometheus text (format 0.0.4).

Written here rather than with prometheus_client: nginx-prometheus-exporter
names its counters `nginx_connections_accepted` and `..._handled` (no
`_total`), and existing dashboards query those names; prometheus_client
renames every counter to end in `_total`. The format is small, and a strict
parser in the unit tests checks every line.

Labels are bounded: upstream names (at most model.MAX_UPSTREAMS), states,
results, Docker actions, `ip:port` addresses; never container ids.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .status import RESULTS, STATES, Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclasses.dataclass(frozen=True)
class Stub:
    """nginx's stub_status figures."""

    active: int
    accepted: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int


_STUB_RE = re.compile(
    r"Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)\s+"
    r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)"
)


def parse_stub(text: str) -> Stub | None:
    """The figures from stub_status's page; None if it is not one."""
    found = _STUB_RE.search(text)
    if found is None:
        return None
    a, acc, han, req, rd, wr, wt = (int(g) for g in found.groups())
    return Stub(active=a, accepted=acc, handled=han, requests=req, reading=rd, writing=wr, waiting=wt)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


class Exposition:
    """Families in order: `family` writes HELP and TYPE once, `sample` the lines under it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        assert NAME_RE.fullmatch(name), name
        self.lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        shown = ""
        if labels:
            assert all(LABEL_RE.fullmatch(k) for k in labels), labels
            shown = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"
        self.lines.append(f"{name}{shown} {_value(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _members(exp: Exposition, upstreams: Iterable[Mapping[str, Any]]) -> None:
    upstreams = list(upstreams)
    exp.family("dynamic_nginx_upstream_members", "gauge", "Members of each upstream by state.")
    for u in upstreams:
        states = [m.get("state") for m in u.get("members", [])]
        for s in STATES:
            exp.sample("dynamic_nginx_upstream_members", states.count(s), {"upstream": u["name"], "state": s})
    exp.family(
        "dynamic_nginx_upstream_server_up",
        "gauge",
        "1 for each server line nginx may send requests to (0: marked down by its labels).",
    )
    for u in upstreams:
        for m in u.get("members", []):
            up = 0 if m.get("down") else 1
            exp.sample("dynamic_nginx_upstream_server_up", up, {"upstream": u["name"], "server": m["address"]})


def _excluded(exp: Exposition, excluded: Iterable[Mapping[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for entry in excluded:
        reason = str(entry.get("reason") or "unknown")
        counts[reason] = counts.get(reason, 0) + 1
    exp.family("dynamic_nginx_excluded_containers", "gauge", "In-scope containers that are not members, by reason.")
    for reason, n in sorted(counts.items()):
        exp.sample("dynamic_nginx_excluded_containers", n, {"reason": reason})


def _reloads(exp: Exposition, reloads: Mapping[str, Any]) -> None:
    totals = reloads.get("totals") or {}
    recent = reloads.get("recent") or []
    exp.family("dynamic_nginx_reloads_total", "counter", "Reload attempts since the reloader started, by result.")
    for result in RESULTS:
        exp.sample("dynamic_nginx_reloads_total", float(totals.get(result, 0)), {"result": result})
    exp.family("dynamic_nginx_config_generation", "gauge", "Configurations nginx took since the reloader started.")
    exp.sample("dynamic_nginx_config_generation", float(reloads.get("generation") or 0))
    if recent:
        exp.family("dynamic_nginx_last_reload_successful", "gauge", "1 if the last reload attempt succeeded.")
        exp.sample("dynamic_nginx_last_reload_successful", 1 if recent[0].get("result") == "ok" else 0)
        exp.family("dynamic_nginx_reload_duration_seconds", "gauge", "How long the last reload attempt took.")
        exp.sample("dynamic_nginx_reload_duration_seconds", float(recent[0].get("duration_seconds") or 0))
    if reloads.get("last_success_at"):
        exp.family(
            "dynamic_nginx_last_reload_success_timestamp_seconds", "gauge", "When nginx last took a new configuration."
        )
        exp.sample("dynamic_nginx_last_reload_success_timestamp_seconds", float(reloads["last_success_at"]))


def _event_to_applied(exp: Exposition, histogram: Mapping[str, Any]) -> None:
    """The reloader's histogram as Prometheus writes one: cumulative `_bucket`s ending in +Inf, `_sum`, `_count`."""
    name = "dynamic_nginx_event_to_applied_seconds"
    exp.family(name, "histogram", "Time from a Docker event to nginx running the files it changed.")
    count = float(histogram.get("count") or 0)
    for bound, n in histogram.get("buckets") or []:
        exp.sample(
            f"{name}_bucket", float(n), {"le": repr(float(bound))}
        )  # "0.05", "1.0": as client libraries write it
    exp.sample(f"{name}_bucket", count, {"le": "+Inf"})
    exp.sample(f"{name}_sum", float(histogram.get("sum") or 0))
    exp.sample(f"{name}_count", count)


def _docker(exp: Exposition, docker: Mapping[str, Any]) -> None:
    exp.family("dynamic_nginx_docker_connected", "gauge", "1 while the watcher follows Docker's events.")
    exp.sample("dynamic_nginx_docker_connected", 1 if docker.get("connected") else 0)
    exp.family("dynamic_nginx_docker_reconnects_total", "counter", "Reconnections to Docker since the watcher started.")
    exp.sample("dynamic_nginx_docker_reconnects_total", float(docker.get("reconnects") or 0))
    exp.family("dynamic_nginx_docker_events_total", "counter", "Docker events the watcher took in, by action.")
    for action, n in sorted((docker.get("events") or {}).items()):
        exp.sample("dynamic_nginx_docker_events_total", float(n), {"action": str(action)})


def _nginx(exp: Exposition, stub: Stub | None) -> None:
    """Under nginx-prometheus-exporter's names and types, so its dashboards work unchanged."""
    exp.family("nginx_up", "gauge", "Status of the last metric scrape")
    exp.sample("nginx_up", 0 if stub is None else 1)
    if stub is None:
        return
    for name, kind, help_text, value in (
        ("nginx_connections_accepted", "counter", "Accepted client connections", stub.accepted),
        ("nginx_connections_active", "gauge", "Active client connections", stub.active),
        ("nginx_connections_handled", "counter", "Handled client connections", stub.handled),
        ("nginx_connections_reading", "gauge", "Connections where NGINX is reading the request header", stub.reading),
        ("nginx_connections_waiting", "gauge", "Idle client connections", stub.waiting),
        (
            "nginx_connections_writing",
            "gauge",
            "Connections where NGINX is writing the response back to the client",
            stub.writing,
        ),
        ("nginx_http_requests_total", "counter", "Total http requests", stub.requests),
    ):
        exp.family(name, kind, help_text)
        exp.sample(name, value)


def exposition(status: Mapping[str, Any], stub: Stub | None) -> str:
    """The whole /metrics text for a composed status.json and stub_status's figures."""
    exp = Exposition()
    _members(exp, status.get("upstreams") or [])
    _excluded(exp, status.get("excluded") or [])
    _reloads(exp, status.get("reloads") or {})
    _event_to_applied(exp, (status.get("reloads") or {}).get("event_to_applied_seconds") or Histogram().part())
    _docker(exp, status.get("docker") or {})
    _nginx(exp, stub)
    return exp.text()
