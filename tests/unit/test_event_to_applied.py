"""dynamic_nginx_event_to_applied_seconds: the watcher leaves the time of the oldest Docker event
behind the files it wrote; the reloader, after a confirmed reload, observes event -> now into
its histogram; /metrics writes it by Prometheus's histogram rules. Neither program calls the other."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dynamic_nginx import docker_source as D
from dynamic_nginx import metrics, rundir, status
from dynamic_nginx.watcher import Watcher
from fake_docker import FakeDocker
from support import PROXY_ID, settings_in
from test_status import composed, parse_exposition


def test_a_confirmed_reload_observes_the_watchers_last_write_once(tmp_path: Path) -> None:
    applied = tmp_path / rundir.APPLIED
    history = status.ReloadHistory(tmp_path / rundir.RELOAD_STATUS)
    assert not history.confirmed(applied, 100.0, 101.0)  # nothing written yet: nothing observed
    applied.parent.mkdir()
    applied.write_text("[1, 2]")
    assert not history.confirmed(applied, 100.0, 101.0)  # not a stamp: ignored
    status.write_applied(applied, event_at=99.5, written_at=99.8)
    assert not history.confirmed(applied, 99.7, 100.0)  # the reload began before the write: the next one counts it
    assert history.confirmed(applied, 99.9, 100.2)
    assert not history.confirmed(applied, 101.0, 101.1)  # the same write again: counted once
    history.add(99.9, 0.3, "ok")
    data = json.loads((tmp_path / rundir.RELOAD_STATUS).read_text())["event_to_applied_seconds"]
    assert data["count"] == 1 and data["sum"] == 0.7
    assert dict((b, n) for b, n in data["buckets"]) == {b: (1 if b >= 0.7 else 0) for b in status.EVENT_BUCKETS}


def test_with_the_status_off_nothing_is_written(tmp_path: Path) -> None:
    status.write_applied(None, 1.0, 2.0)
    history = status.ReloadHistory(None)
    history.confirmed(tmp_path / rundir.APPLIED, 3.0, 4.0)
    assert list(tmp_path.iterdir()) == []


def test_the_watcher_leaves_the_oldest_event_of_a_batch_that_changed_files(tmp_path: Path) -> None:
    docker = FakeDocker()
    web = docker.add("shop-web-1", "172.18.0.2", service="web")
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False, status_listen="8081")
    watcher = Watcher(settings)
    source = D.DockerSource(docker)
    applied = settings.run_dir / rundir.APPLIED
    watcher.sync(source, PROXY_ID)
    assert not applied.exists(), "a sync without events leaves no event time"
    watcher.sync(source, PROXY_ID, None, event_at=50.0)
    assert not applied.exists(), "nothing changed: nothing to apply"
    docker.records[web].health = "unhealthy"
    before = time.time()
    watcher.sync(source, PROXY_ID, None, event_at=60.0)
    stamp = json.loads(applied.read_text())
    assert stamp["event_at"] == 60.0 and stamp["written_at"] >= before - 0.001


def test_metrics_write_the_histogram_by_prometheus_rules() -> None:
    data = composed()
    history = status.ReloadHistory(None)
    for seconds in (0.03, 0.2, 0.2, 4.0, 120.0):
        history.event_to_applied.observe(seconds)
    data["reloads"]["event_to_applied_seconds"] = history.event_to_applied.part()
    families = parse_exposition(metrics.exposition(data, None))
    family = families["dynamic_nginx_event_to_applied_seconds"]
    assert family["type"] == "histogram"
    got = family["samples"]
    name = "dynamic_nginx_event_to_applied_seconds"
    assert got[(f"{name}_bucket", (("le", "0.05"),))] == 1
    assert got[(f"{name}_bucket", (("le", "0.25"),))] == 3
    assert got[(f"{name}_bucket", (("le", "5.0"),))] == 4
    assert got[(f"{name}_bucket", (("le", "60.0"),))] == 4
    assert got[(f"{name}_bucket", (("le", "+Inf"),))] == 5
    assert got[(f"{name}_count", ())] == 5
    assert abs(got[(f"{name}_sum", ())] - 124.43) < 1e-9


def test_before_any_observation_the_histogram_is_empty_but_valid() -> None:
    families = parse_exposition(metrics.exposition(composed(), None))
    got = families["dynamic_nginx_event_to_applied_seconds"]["samples"]
    assert got[("dynamic_nginx_event_to_applied_seconds_count", ())] == 0
    assert ("dynamic_nginx_event_to_applied_seconds_bucket", (("le", "+Inf"),)) in got


def test_the_reloader_observes_only_after_a_reload_it_confirmed(tmp_path: Path) -> None:
    from dynamic_nginx.nginx import Nginx
    from dynamic_nginx.reloader import Reloader

    settings = settings_in(tmp_path, status_listen="8081")
    reloader = Reloader(settings, Nginx(["nginx"], tmp_path / "nginx.pid"))
    began = time.time()
    status.write_applied(settings.run_dir / rundir.APPLIED, event_at=began - 0.2, written_at=began - 0.1)
    reloader.record(began, time.monotonic(), False)  # nginx did not take it: nothing applied
    assert reloader.history.event_to_applied.count == 0
    reloader.record(began, time.monotonic(), True)
    data = json.loads((settings.run_dir / rundir.RELOAD_STATUS).read_text())
    assert data["event_to_applied_seconds"]["count"] == 1
    assert 0.2 <= data["event_to_applied_seconds"]["sum"] < 60
