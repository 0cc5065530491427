"""`dynamic-nginx status`: the table and --json from the parts in a run dir, and
the reloader's invalid-since file the image's health check reads."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

from dynamic_nginx import cli, health, model, rundir, status
from support import container, proxy

TWO_WEB = model.build(
    (
        container("shop-web-1", number=1, ip="172.18.0.2", exposed=(80,)),
        container(
            "shop-web-2",
            number=2,
            ip="172.18.0.3",
            exposed=(80,),
            health="healthy",
            labels={"dynamic-nginx.backup": "true"},
        ),
    ),
    proxy(),
    {"api.upstream"},
)
DOCKER = {"connected": True, "api_version": "1.41", "reconnects": 1, "events": {"start": 2}, "last_event_at": None}
ERROR = 'unknown directive "sever" in /etc/nginx/conf.d/a.conf:3'


def run_dir_with_parts(tmp_path: Path) -> Path:
    reporter = status.WatcherStatus(tmp_path / rundir.WATCHER_STATUS)
    reporter.connected("1.41")
    reporter.synced(TWO_WEB)
    reporter.flush()
    history = status.ReloadHistory(tmp_path / rundir.RELOAD_STATUS)
    history.add(1700000000.0, 0.02, "ok")
    history.add(1700000100.0, 0.01, "invalid", ERROR)
    return tmp_path


def run(tmp_path: Path, *argv: str) -> str:
    out = io.StringIO()
    assert cli.main(list(argv), out, {"DYNAMIC_NGINX_RUN_DIR": str(tmp_path), "DB_PASSWORD": "x"}) == 0
    return out.getvalue()


def test_status_prints_upstreams_members_docker_and_reloads(tmp_path: Path) -> None:
    text = run(run_dir_with_parts(tmp_path), "status")
    lines = text.splitlines()
    assert "Docker: connected (API 1.41)" in text
    assert "configuration generation 1; reloads: 1 ok, 1 rejected by nginx -t, 0 failed" in text
    assert any(line.startswith("upstream web.upstream (round_robin, 2 members)") for line in lines)
    assert any(line.startswith("upstream api.upstream") for line in lines)
    assert "no live container: nginx answers 503 here" in text  # api.upstream
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  shop-web-")}
    assert rows["shop-web-1"][1:3] == ["active", "172.18.0.2:80"]
    assert rows["shop-web-2"][1:3] == ["backup", "172.18.0.3:80"] and "healthy" in rows["shop-web-2"]
    reload_rows = [line for line in lines if "UTC" in line and ("invalid" in line or " ok " in line)]
    assert "invalid" in reload_rows[0] and ERROR in reload_rows[0]  # newest first, nginx's error in full


def test_status_says_when_docker_is_not_connected(tmp_path: Path) -> None:
    reporter = status.WatcherStatus(tmp_path / rundir.WATCHER_STATUS)
    reporter.synced(TWO_WEB)
    reporter.disconnected("permission denied on /var/run/docker.sock")
    text = run(tmp_path, "status")
    assert "Docker: NOT connected: permission denied on /var/run/docker.sock" in text
    assert "last reloads: none since the reloader started" in text


def test_status_before_any_program_reported(tmp_path: Path) -> None:
    text = run(tmp_path, "status")
    assert "Docker: NOT connected: the watcher has not reported yet" in text and "no upstreams" in text


def test_left_out_containers_are_listed_with_their_reason(tmp_path: Path) -> None:
    data = status.compose(None, None, {}, time.time())
    data["excluded"] = [{"name": "shop-web-9", "service": "web", "reason": "unhealthy", "detail": "health check fails"}]
    text = cli.text(data)
    assert "left out (1)" in text
    assert any(line.split()[:3] == ["shop-web-9", "web", "unhealthy"] for line in text.splitlines())


def test_json_is_the_composed_model(tmp_path: Path) -> None:
    data = json.loads(run(run_dir_with_parts(tmp_path), "status", "--json"))
    assert {u["name"] for u in data["upstreams"]} == {"api.upstream", "web.upstream"}
    assert data["reloads"]["recent"][0]["error"] == ERROR and data["docker"]["connected"] is True
    assert data["environment"] == {"DYNAMIC_NGINX_RUN_DIR": str(tmp_path)}  # DB_PASSWORD: not ours, not shown
    assert set(data) == set(status.compose(None, None, {}, 0.0))


def test_invalid_since_is_made_once_and_removed_by_a_good_reload(tmp_path: Path) -> None:
    path = tmp_path / health.INVALID_SINCE
    health.note(tmp_path, "invalid", ERROR)
    assert path.read_text() == ERROR + "\n"
    os.utime(path, (1000.0, 1000.0))
    health.note(tmp_path, "invalid", "another error")
    assert path.stat().st_mtime == 1000.0 and path.read_text() == ERROR + "\n"  # since the first refusal
    health.note(tmp_path, "failed", "")
    assert path.exists()
    health.note(tmp_path, "ok", "")
    assert not path.exists()
    health.note(tmp_path, "failed", "")
    assert not path.exists()  # nginx not taking workers: the check asks nginx itself
