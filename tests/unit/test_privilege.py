"""Least privilege: the rules for whom the watcher becomes, and the drop itself in real child processes.

The drop tests need root and the image's user dynamic-nginx, as the image's test stage has them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from dynamic_nginx import privilege
from dynamic_nginx.__main__ import _render_unprivileged
from dynamic_nginx.privilege import Plan, Socket, plan
from support import settings_in

UID = GID = 102
DOCKER_GID = 998


def sock(mode: int, uid: int = 0, gid: int = DOCKER_GID) -> Socket:
    return Socket("/var/run/docker.sock", uid, gid, mode)


@pytest.mark.parametrize(
    "conf_writable, socket, expected",
    [
        pytest.param(True, sock(0o660), Plan(UID, GID, (DOCKER_GID,)), id="dockerd's 0660 socket: its group"),
        pytest.param(True, sock(0o606), Plan(UID, GID), id="a socket open to all but its group: no group"),
        pytest.param(True, None, Plan(UID, GID), id="tcp:// or no socket: no group"),
        pytest.param(False, sock(0o660), Plan(UID, GID, (DOCKER_GID,), True), id="unwritable conf.d: DAC_OVERRIDE"),
        pytest.param(False, sock(0o600), Plan(UID, GID, (), True), id="DAC_OVERRIDE passes a 0600 socket too"),
        pytest.param(True, sock(0o600, uid=UID), Plan(UID, GID), id="a socket the user owns"),
    ],
)
def test_plan(conf_writable: bool, socket: Socket | None, expected: Plan) -> None:
    assert plan(UID, GID, conf_writable, socket) == expected


def test_a_socket_its_group_cannot_use_is_one_line_with_the_fix() -> None:
    problem = plan(UID, GID, True, sock(0o600)).problem
    assert problem.startswith("/var/run/docker.sock (owner uid 0, group gid 998, mode 600) cannot be used")
    assert "chmod 660" in problem and "socket proxy" in problem and "\n" not in problem


@pytest.mark.parametrize(
    "docker_host, path",
    [(None, "/var/run/docker.sock"), ("unix:///tmp/d.sock", "/tmp/d.sock"), ("tcp://docker:2375", None)],
)
def test_socket_path(docker_host: str | None, path: str | None) -> None:
    assert privilege.socket_path(docker_host) == path


def in_child(body: Callable[[], object]) -> object:
    """Run body in a forked child (the drop cannot be undone) and return what it returned, via a pipe."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result = json.dumps(body())
        except BaseException as error:
            result = json.dumps(f"error: {error!r}")
        os.write(write, result.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(text)


def status() -> dict[str, str]:
    lines = Path("/proc/self/status").read_text().splitlines()
    fields = (line.partition(":") for line in lines)
    return {k: v.split()[0] if k in ("Uid", "Gid") else v.strip() for k, _, v in fields}


@pytest.mark.parametrize("writable, caps", [(True, 0), (False, 1 << privilege.CAP_DAC_OVERRIDE)])
def test_drop_becomes_the_user_with_at_most_dac_override_for_ever(tmp_path: Path, writable: bool, caps: int) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    os.chown(conf, 0, GID if writable else 0)
    conf.chmod(0o775 if writable else 0o755)

    def dropped() -> object:
        privilege.drop(conf, "tcp://docker:2375")
        s = status()
        return [
            s["Uid"],
            s["Gid"],
            int(s["CapEff"], 16),
            int(s["CapPrm"], 16),
            int(s["CapBnd"], 16),
            s["NoNewPrivs"],
            s["Groups"],
        ]

    assert in_child(dropped) == ["102", "102", caps, caps, caps, "1", ""]


def test_the_start_up_render_runs_as_the_user_and_its_files_say_so(tmp_path: Path, monkeypatch) -> None:
    """Docker unreachable: the render writes 503 stubs, from a child that dropped root."""
    for parent in [tmp_path, *tmp_path.parents]:  # pytest's folders are root's alone
        parent.chmod(parent.stat().st_mode | 0o011)
    settings = settings_in(tmp_path)
    for folder in (settings.conf_dir, settings.run_dir):
        os.chown(folder, 0, GID)
        folder.chmod(0o775)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    assert _render_unprivileged(settings) == 0
    written = settings.conf_dir / "dynamic-nginx-upstreams.conf"
    assert written.stat().st_uid == UID, "the start-up render ran as root"
    assert os.geteuid() == 0  # this process (the start-up check's) stays root
