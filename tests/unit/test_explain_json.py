"""`dynamic-nginx explain <x> --json`: the same steps as the text, as data, with each verdict's reason code."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import cli, explain
from dynamic_nginx import docker_source as D
from support import PROXY_ID, settings_in
from test_explain import connect, demo, explained


def as_json(tmp_path: Path, target: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    settings = settings_in(tmp_path, container=PROXY_ID, probe_ports=False)
    code = explain.run(target, settings, D.DockerSource(demo()), out, connect, as_json=True)
    return code, json.loads(out.getvalue())


@pytest.mark.parametrize(
    ("target", "member_of", "reason"),
    [
        pytest.param("shop-web-1", ["web.upstream"], None, id="healthy: a member, no reason"),
        pytest.param("shop-web-2", [], "health_starting", id="starting"),
        pytest.param("shop-sick-1", [], "unhealthy", id="unhealthy"),
        pytest.param("shop-bad-1", [], "label_invalid:dynamic-nginx.port", id="bad label"),
        pytest.param("shop-lonely-1", [], "no_shared_network", id="no shared network"),
    ],
)
def test_the_json_holds_the_texts_steps_and_the_verdict(
    tmp_path: Path, target: str, member_of: list[str], reason: str | None
) -> None:
    code, data = as_json(tmp_path, target)
    _, text = explained(tmp_path, target)
    assert code == 0 and data["found"] is True and data["taken_as"] == "container"
    (container,) = data["containers"]
    assert container["name"] == target and container["member_of"] == member_of and container["reason"] == reason
    assert (container["detail"] is None) == (reason is None)
    marks = {True: "ok", False: "NO", None: "--"}
    lines = [f"{marks[s['ok']]}  {s['name']:<10} {s['text']}" for s in container["steps"]]
    # The connect step's time differs run to run only in a real connect; the fake's is fixed.
    assert lines == [line.strip() for line in text.splitlines()[1:]]
    verdict = next(s for s in container["steps"] if s["name"] == "verdict")
    assert verdict["ok"] is (reason is None)
    if reason is not None:
        assert verdict["text"] == f"out: {reason}: {container['detail']}"


def test_a_service_gives_each_container_and_an_unknown_name_exit_1(tmp_path: Path) -> None:
    code, data = as_json(tmp_path, "web")
    assert code == 0 and data["taken_as"] == "service" and data["message"] == "service web: 2 container(s)"
    assert [c["name"] for c in data["containers"]] == ["shop-web-1", "shop-web-2"]
    code, data = as_json(tmp_path, "nope")
    assert code == 1 and data["found"] is False and data["containers"] == []
    assert data["message"].startswith("no container or service named 'nope': ")


def test_the_command_takes_json_after_the_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[str, bool]] = []

    def fake_main(target: str, settings: object, out: io.StringIO, as_json: bool = False) -> int:
        seen.append((target, as_json))
        return 0

    monkeypatch.setattr(explain, "main", fake_main)
    environ = {"DYNAMIC_NGINX_RUN_DIR": str(tmp_path)}
    assert cli.main(["explain", "web-2", "--json"], io.StringIO(), environ) == 0
    assert cli.main(["explain", "web-2"], io.StringIO(), environ) == 0
    assert seen == [("web-2", True), ("web-2", False)]
