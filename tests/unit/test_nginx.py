"""nginx: nginx's error lines, and real `nginx -t` runs with the options of the running nginx."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dynamic_nginx import rundir
from dynamic_nginx.nginx import Nginx, children, find_master, first_error, retire
from dynamic_nginx.reloader import Reloader
from support import needs_nginx, nginx_command, nginx_running, settings_in

HOST_NOT_FOUND = """\
2026/11/25 20:55:50 [emerg] 9#9: host not found in upstream "web.upstream" in /t/nginx.conf:7
nginx: configuration file /t/nginx.conf test failed
"""
UNKNOWN_DIRECTIVE = """\
2026/11/25 20:55:50 [emerg] 11#11: unknown directive "bogus" in /t/conf.d/bad.conf:3
nginx: configuration file /t/nginx.conf test failed
"""
BEFORE_THE_LOG_IS_OPEN = """\
nginx: [emerg] unexpected end of file, expecting "}" in /etc/nginx/conf.d/web.conf:12
nginx: configuration file /etc/nginx/nginx.conf test failed
"""
WARNING_FIRST = """\
nginx: [warn] the "user" directive makes sense only if the master process runs with super-user privileges, \
ignored in /etc/nginx/nginx.conf:1
2026/11/25 20:55:50 [emerg] 13#13: "user" directive is not allowed here in /t/conf.d/bad.conf:4
nginx: configuration file /t/nginx.conf test failed
"""
OPEN_FAILED = """\
2026/11/25 20:55:50 [emerg] 14#14: open() "/t/nope.conf" failed (2: No such file or directory)
nginx: configuration file /t/nope.conf test failed
"""


@pytest.mark.parametrize(
    ("output", "message"),
    [
        pytest.param(
            HOST_NOT_FOUND,
            '[emerg] host not found in upstream "web.upstream" in /t/nginx.conf:7',
            id="host not found in upstream",
        ),
        pytest.param(
            UNKNOWN_DIRECTIVE,
            '[emerg] unknown directive "bogus" in /t/conf.d/bad.conf:3',
            id="unknown directive",
        ),
        pytest.param(
            BEFORE_THE_LOG_IS_OPEN,
            '[emerg] unexpected end of file, expecting "}" in /etc/nginx/conf.d/web.conf:12',
            id="error printed before the error log is open",
        ),
        pytest.param(
            WARNING_FIRST,
            '[emerg] "user" directive is not allowed here in /t/conf.d/bad.conf:4',
            id="warnings are skipped",
        ),
        pytest.param(
            OPEN_FAILED,
            '[emerg] open() "/t/nope.conf" failed (2: No such file or directory)',
            id="missing config file",
        ),
        pytest.param(
            "nginx: configuration file /t/nginx.conf test failed\n",
            "nginx: configuration file /t/nginx.conf test failed",
            id="no tagged line: the whole output on one line",
        ),
        pytest.param("x" * 500, "x" * 400, id="untagged output is cut to its last 400 characters"),
        pytest.param("", "nginx -t failed without a message", id="no output at all"),
        pytest.param(
            'nginx: [alert] could not open error log file: open() "/x/error.log" failed\n'
            'nginx: [emerg] unknown directive "bogus" in /t/conf.d/bad.conf:3\n',
            '[emerg] unknown directive "bogus" in /t/conf.d/bad.conf:3',
            id="the emerg cause wins over an earlier alert",
        ),
    ],
)
def test_first_error(output: str, message: str) -> None:
    assert first_error(output) == message


def test_children_reads_proc(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert child.pid in children(os.getpid())
        assert children(child.pid) == set()
    finally:
        child.kill()
        child.wait()


@needs_nginx
def test_nginx_test_accepts_a_good_config(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "web.conf").write_text("upstream web.upstream {\n    server 10.0.0.1:80;\n}\n")
    result = Nginx(nginx_command(tmp_path, tmp_path / "conf.d"), tmp_path / "nginx.pid").test()
    assert result.ok, result.message


@needs_nginx
@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        pytest.param(
            "upstream web.upstream {\n    server 10.0.0.1:80;\n    bogus on;\n}\n",
            3,
            'unknown directive "bogus"',
            id="unknown directive",
        ),
        pytest.param(
            "upstream web.upstream {\n    server 10.0.0.1:80;\n",
            3,
            "unexpected end of file",
            id="unclosed block",
        ),
        pytest.param("\n\nupstream web.upstream {\n    server 10.0.0.1:99999;\n}\n", 4, "invalid port", id="bad port"),
    ],
)
def test_nginx_test_names_the_bad_file_and_line(tmp_path: Path, text: str, line: int, says: str) -> None:
    bad = tmp_path / "conf.d" / "bad.conf"
    bad.parent.mkdir()
    bad.write_text(text)
    result = Nginx(nginx_command(tmp_path, bad.parent), tmp_path / "nginx.pid").test()
    assert not result.ok
    assert result.message.startswith("[emerg] ")
    assert says in result.message
    assert result.message.endswith(f" in {bad}:{line}")


@pytest.fixture
def running_nginx(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """A real nginx master with workers, listening only on a unix socket in tmp_path."""
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    command = nginx_command(
        tmp_path, conf_d, server=f"    server {{ listen unix:{tmp_path}/http.sock; return 204; }}\n"
    )
    with nginx_running(command, tmp_path):
        yield command, tmp_path / "nginx.pid"


@needs_nginx
def test_reloader_reloads_a_valid_config_and_refuses_a_broken_one(
    tmp_path: Path, running_nginx: tuple[list[str], Path]
) -> None:
    command, pid_file = running_nginx
    nginx = Nginx(command, pid_file)
    settings = settings_in(tmp_path, nginx_pid_file=pid_file)
    reload = Reloader(settings, nginx)
    workers = children(nginx.master_pid() or 0)

    (settings.conf_dir / "web.conf").write_text("upstream web.upstream {\n    server 10.0.0.1:80;\n}\n")
    assert reload.apply() is True
    assert reload.reloads == 1
    assert (settings.run_dir / rundir.NGINX_RELOADED).exists()
    assert children(nginx.master_pid() or 0) != workers

    (settings.conf_dir / "web.conf").write_text("upstream web.upstream {\n    bogus;\n}\n")
    assert reload.apply() is False
    assert reload.reloads == 1
    assert nginx.master_pid() is not None  # still serving its last good configuration


def test_retire_sends_quit_and_skips_processes_already_gone() -> None:
    alive = subprocess.Popen(["sleep", "30"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    try:
        retire([alive.pid, gone.pid])
        assert alive.wait(10) == -signal.SIGQUIT
    finally:
        alive.kill()
        alive.wait()


@needs_nginx
def test_retire_early_reload_ends_the_old_generation_and_keeps_serving(
    tmp_path: Path, running_nginx: tuple[list[str], Path]
) -> None:
    command, pid_file = running_nginx
    nginx = Nginx(command, pid_file, retire_early=True)
    master = nginx.master_pid() or 0
    old = children(master)
    assert nginx.reload() is True
    deadline = time.monotonic() + 10
    while children(master) & old and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not children(master) & old, "the old workers did not exit"
    assert children(master), "no workers left"
    with socket.socket(socket.AF_UNIX) as client:  # the new generation answers
        client.settimeout(5)
        client.connect(str(tmp_path / "http.sock"))
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert client.recv(64).startswith(b"HTTP/1.1 204")
    assert "kill(" not in (tmp_path / "nginx.log").read_text(), "the master could not signal a worker"


@pytest.mark.parametrize(
    ("processes", "master"),
    [
        pytest.param(
            {"1": b"/usr/bin/python3\0-m\0supervisor", "40": b"nginx: master process nginx -g daemon off;"},
            40,
            id="the master among others",
        ),
        pytest.param({"41": b"nginx: worker process", "42": b"nginx\0-t\0-q"}, None, id="workers and nginx -t only"),
        pytest.param({}, None, id="nothing running"),
    ],
)
def test_find_master_by_its_title(tmp_path: Path, processes: dict[str, bytes], master: int | None) -> None:
    for pid, cmdline in processes.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(cmdline)
    (tmp_path / "self").mkdir()  # not a number: skipped
    assert find_master(tmp_path) == master


@needs_nginx
def test_a_moved_pid_file_still_finds_the_master(tmp_path: Path, running_nginx: tuple[list[str], Path]) -> None:
    command, pid_file = running_nginx
    actual = int(pid_file.read_text())
    assert Nginx(command, tmp_path / "elsewhere.pid").master_pid() == actual
