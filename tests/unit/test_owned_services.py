"""`<service>.upstream` is its service's before the service's first start and after a
watcher restart: the services come from a list of all the project's containers (running
or not) and are kept in the run dir. Against the fake Docker client, through Watcher.sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import docker_source as D
from dynamic_nginx.rebuild import SERVICES, load_services
from dynamic_nginx.watcher import Watcher
from fake_docker import FakeDocker
from support import PROXY_ID, members, settings_in

INTRUDER = {"dynamic-nginx.upstream": "app"}


def host(app_state: str | None) -> FakeDocker:
    """A service `intruder` labelled into app's upstream, and app's container in a given state (or none)."""
    docker = FakeDocker()
    docker.add("shop-intruder-1", "172.18.0.3", service="intruder", labels=INTRUDER)
    if app_state is not None:
        docker.add("shop-app-1", "172.18.0.4", service="app", state=app_state)
    return docker


@pytest.mark.parametrize(
    ("app_state", "expected"),
    [
        pytest.param(None, ["shop-intruder-1"], id="no service app at all: the name is free"),
        pytest.param("created", [], id="app created, not started yet (compose up creates all first): app's"),
        pytest.param("exited", [], id="app stopped: app's"),
        pytest.param("running", ["shop-app-1"], id="app running: app's alone"),
    ],
)
def test_who_serves_app_upstream(tmp_path: Path, app_state: str | None, expected: list[str]) -> None:
    watcher = Watcher(settings_in(tmp_path, container=PROXY_ID, probe_ports=False))
    model = watcher.sync(D.DockerSource(host(app_state)), PROXY_ID)
    assert members(model).get("app.upstream", []) == expected
    refused = [p for p in model.problems if "shop-intruder-1" in p]
    assert len(refused) == (0 if app_state is None else 1), model.problems


def test_a_restarted_watcher_knows_the_services_a_scale_to_zero_left_without_containers(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False)
    Watcher(settings).sync(D.DockerSource(host("running")), PROXY_ID)
    assert load_services(settings.run_dir / SERVICES) == {"app", "intruder"}
    # app scaled to 0 (its containers removed), then supervisord restarts the watcher.
    model = Watcher(settings).sync(D.DockerSource(host(None)), PROXY_ID)
    assert members(model).get("app.upstream", []) == []


def test_a_damaged_services_file_keeps_only_names(tmp_path: Path) -> None:
    path = tmp_path / "services"
    path.write_text("app\n../etc\nweb\n\n{bad}\n")
    assert load_services(path) == {"app", "web"}
