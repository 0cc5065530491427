"""`dynamic-nginx`, the command for people: `dynamic-nginx status [--json]`, `dynamic-nginx explain <x> [--json]`.

Run inside the proxy's container (`docker compose exec proxy dynamic-nginx
status`). It reads the status parts the watcher and the reloader keep in the
run dir (status.py), the same ones /status.json is composed of, so it answers
whether or not DYNAMIC_NGINX_STATUS_LISTEN is set, and asks no program anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import rundir, status
from . import settings as S


def when(value: object) -> str:
    if not isinstance(value, (int, float)) or not value:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        (
            indent + "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths[:-1], strict=True)) + "  " + row[-1]
        ).rstrip()
        for row in rows
    ]


def text(data: Mapping[str, Any]) -> str:
    """The composed status (status.compose) as a plain-text report."""
    lines: list[str] = []
    proxy = data.get("proxy") or {}
    docker = data.get("docker") or {}
    reloads = data.get("reloads") or {}
    totals = reloads.get("totals") or {}
    name = proxy.get("name") or "?"
    lines.append(f"proxy {name}" + (f", project {proxy['project']}" if proxy.get("project") else ""))
    if docker.get("connected"):
        api = f" (API {docker['api_version']})" if docker.get("api_version") else ""
        lines.append(
            f"Docker: connected{api}, {docker.get('reconnects') or 0} reconnects, "
            f"last event {when(docker.get('last_event_at'))}"
        )
    else:
        lines.append(f"Docker: NOT connected: {docker.get('error') or 'no reason given'}")
    lines.append(
        f"configuration generation {reloads.get('generation', 0)}; reloads: {totals.get('ok', 0)} ok, "
        f"{totals.get('invalid', 0)} rejected by nginx -t, {totals.get('failed', 0)} failed"
    )
    upstreams = data.get("upstreams") or []
    if not upstreams:
        lines += ["", "no upstreams"]
    for u in upstreams:
        members = u.get("members") or []
        lines += ["", f"upstream {u['name']} ({u.get('lb')}, {len(members)} member{'' if len(members) == 1 else 's'})"]
        if not members:
            lines.append("  no live container: nginx answers 503 here")
            continue
        rows = [["CONTAINER", "STATE", "ADDRESS", "NETWORK", "HEALTH", "PARAMETERS"]]
        rows += [
            [m["name"], m["state"], m["address"], m["network"], m["health"], m.get("parameters") or "-"]
            for m in members
        ]
        lines += table(rows)
    excluded = data.get("excluded") or []
    if excluded:
        lines += ["", f"left out ({len(excluded)})"]
        rows = [["CONTAINER", "SERVICE", "REASON", "WHY"]]
        rows += [
            [e.get("name") or "?", e.get("service") or "-", e.get("reason") or "?", e.get("detail") or ""]
            for e in excluded
        ]
        lines += table(rows)
    for heading, items in (("problems", data.get("problems")), ("warnings", data.get("warnings"))):
        if items:
            lines += ["", heading] + [f"  {item}" for item in items]
    recent = reloads.get("recent") or []
    lines += ["", "last reloads" + ("" if recent else ": none since the reloader started")]
    if recent:
        rows = [["WHEN", "RESULT", "TOOK", "ERROR"]]
        rows += [
            [
                when(r.get("at")),
                r.get("result", "?"),
                f"{(r.get('duration_seconds') or 0) * 1000:.0f} ms",
                " ".join(str(r.get("error") or "").split()),
            ]
            for r in recent[:5]
        ]
        lines += table(rows)
    return "\n".join(lines) + "\n"


def composed(run_dir: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    return status.compose(
        status.load(run_dir / rundir.WATCHER_STATUS), status.load(run_dir / rundir.RELOAD_STATUS), environ, time.time()
    )


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="dynamic-nginx", description="What the proxy sees, from inside its container."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = commands.add_parser("status", help="upstreams, members, left-out containers, Docker, last reloads")
    show.add_argument("--json", action="store_true", help="the status model, as /status.json serves it")
    why = commands.add_parser("explain", help="every step of the decision about a container, or each of a service's")
    why.add_argument("target", help="a container's name or id (or compose's short web-2), or a service's name")
    why.add_argument("--json", action="store_true", help="the same steps as JSON, with each verdict's reason code")
    args = parser.parse_args(argv)
    if args.command == "explain":
        from . import explain  # asks Docker: only this command pays for docker-py

        try:
            settings = S.from_env(environ)
        except S.SettingsError as error:
            print(f"dynamic-nginx: {error}", file=sys.stderr)
            return 2
        return explain.main(args.target, settings, out, as_json=args.json)
    try:
        run_dir = S.from_env(environ).run_dir
    except S.SettingsError as error:  # the programs refuse to start then; the status may still say why
        print(f"dynamic-nginx: {error}; reading the default run dir", file=sys.stderr)
        run_dir = S.Settings().run_dir
    data = composed(run_dir, environ)
    out.write(status.encode(data).decode() if args.json else text(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
