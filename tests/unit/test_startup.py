"""startup: before nginx starts, generated files pass nginx -t and the main config includes them."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from dynamic_nginx import rundir, startup
from dynamic_nginx.marker import MARKER
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.settings import Settings
from support import needs_nginx, nginx_command, settings_in

UPSTREAMS = (
    f"{MARKER} from dynamic-nginx-upstreams.conf.j2; changes are overwritten.\n"
    "upstream web.upstream { server 10.0.0.1:80; }\n"
)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param("http { include /etc/nginx/conf.d/*.conf; }", ["/etc/nginx/conf.d/*.conf"], id="plain"),
        pytest.param(
            "include mime.types;\ninclude  conf.d/*.conf ;",
            ["mime.types", "conf.d/*.conf"],
            id="relative, with spaces",
        ),
        pytest.param('include "/etc/my dir/*.conf";', ["/etc/my dir/*.conf"], id="double quotes"),
        pytest.param("include '/etc/x/*.conf';", ["/etc/x/*.conf"], id="single quotes"),
        pytest.param("#include /etc/nginx/conf.d/*.conf;", [], id="commented out"),
        pytest.param("    # include /a.conf;\n", [], id="indented comment"),
        pytest.param("server { listen 80; } # include /a.conf;", [], id="comment after a directive"),
        pytest.param("fastcgi_param X include;", [], id="a value that says include"),
        pytest.param("server{include /a.conf;}", ["/a.conf"], id="right after a brace"),
        pytest.param("include /etc/nginx/conf.d/*.conf", [], id="no semicolon is not a directive"),
    ],
)
def test_includes(text: str, found: list[str]) -> None:
    assert startup.includes(text) == found


def test_include_patterns_follow_included_files(tmp_path: Path) -> None:
    (tmp_path / "http.d").mkdir()
    (tmp_path / "nginx.conf").write_text("include mime.types;\nhttp { include http.d/*.conf; }\n")
    (tmp_path / "mime.types").write_text("types { text/html html; }\n")
    (tmp_path / "http.d" / "main.conf").write_text("include /etc/nginx/conf.d/*.conf;\n")
    (tmp_path / "http.d" / "loop.conf").write_text(f"include {tmp_path}/nginx.conf;\n")
    assert startup.include_patterns(tmp_path / "nginx.conf") == [
        f"{tmp_path}/mime.types",
        f"{tmp_path}/http.d/*.conf",
        f"{tmp_path}/nginx.conf",
        "/etc/nginx/conf.d/*.conf",
    ]
    assert startup.include_patterns(tmp_path / "missing.conf") == []


@pytest.mark.parametrize(
    ("path", "patterns", "included"),
    [
        pytest.param("/etc/nginx/conf.d/a.conf", ["/etc/nginx/conf.d/*.conf"], True, id="the usual glob"),
        pytest.param("/etc/nginx/conf.d/a.conf", ["/etc/nginx/conf.d/a.conf"], True, id="the file itself"),
        pytest.param("/etc/nginx/conf.d/a.conf", ["/etc/nginx/sites/*.conf"], False, id="another folder"),
        pytest.param("/etc/nginx/conf.d/a.conf", ["/etc/nginx/conf.d/*.inc"], False, id="another suffix"),
        pytest.param("/run/dynamic-nginx/conf.d/a.conf", ["/etc/nginx/conf.d/*.conf"], False, id="fallback"),
        pytest.param("/etc/nginx/conf.d/a.conf", [], False, id="nothing included"),
    ],
)
def test_is_included(path: str, patterns: list[str], included: bool) -> None:
    assert startup.is_included(Path(path), patterns) is included


def prepared(tmp_path: Path, include: bool) -> tuple[Nginx, Settings]:
    settings = settings_in(tmp_path)
    command = nginx_command(tmp_path, settings.conf_dir if include else tmp_path / "nowhere")
    (settings.conf_dir / "dynamic-nginx-upstreams.conf").write_text(UPSTREAMS)
    # The watcher's record of what it writes: these files are its own (mine.conf in one test).
    conf = settings.conf_dir
    (settings.run_dir / rundir.WRITTEN).write_text(f"{conf}/dynamic-nginx-upstreams.conf\n{conf}/mine.conf\n")
    return Nginx(command, settings.nginx_pid_file), settings


@needs_nginx
def test_check_passes_and_keeps_good_copies(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nginx, settings = prepared(tmp_path, include=True)
    assert startup.check(settings, nginx, logging.getLogger("t"))
    assert caplog.messages == []
    assert (settings.run_dir / "good" / "dynamic-nginx-upstreams.conf").read_text() == UPSTREAMS


@needs_nginx
def test_check_reports_a_config_that_does_not_include_conf_d(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nginx, settings = prepared(tmp_path, include=False)
    assert startup.check(settings, nginx, logging.getLogger("t"))
    conf = settings.conf_dir
    expected = (
        f"{tmp_path}/nginx.conf does not include {conf}/*.conf, so nginx never reads the generated upstreams: "
        f"add `include {conf}/*.conf;` inside its http {{ }} block (the image's own nginx.conf has it)"
    )
    assert caplog.messages == [expected]


@needs_nginx
def test_check_removes_a_new_generated_file_that_breaks_nginx(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nginx, settings = prepared(tmp_path, include=True)
    bad = settings.conf_dir / "mine.conf"
    bad.write_text(f"{MARKER} from mine.conf.j2; changes are overwritten.\nnot nginx;\n")
    assert startup.check(settings, nginx, logging.getLogger("t"))
    assert not bad.exists()
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith(
        f"nginx -t failed because of generated file {bad} line 2 (rendered from template mine.conf.j2): [emerg]"
    )
    assert caplog.messages[0].endswith("removed it (it has no good version yet)")


@needs_nginx
def test_check_reports_a_users_file_and_leaves_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nginx, settings = prepared(tmp_path, include=True)
    users = settings.conf_dir / "site.conf"
    users.write_text("not nginx;\n")
    assert not startup.check(settings, nginx, logging.getLogger("t"))
    assert users.exists()
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith(
        "nginx -t fails because of a file that dynamic-nginx did not generate, so nginx cannot start until "
        "it is fixed: [emerg]"
    )
    assert caplog.messages[0].endswith(f"{users}:1")


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        pytest.param(
            '[emerg] unknown directive "stream" in /etc/nginx/nginx.conf:12',
            " (Debian's nginx has the stream module as a module: add "
            "`load_module /usr/lib/nginx/modules/ngx_stream_module.so;` at the top)",
            id="stream block without the module",
        ),
        pytest.param('[emerg] unknown directive "strem" in /etc/nginx/nginx.conf:12', "", id="a typo"),
        pytest.param("[emerg] no servers are inside upstream in /x.conf:3", "", id="anything else"),
    ],
)
def test_hint(message: str, hint: str) -> None:
    assert startup.hint(message) == hint


def test_fingerprint_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.conf").write_text("x")
    before = startup.fingerprint([tmp_path, tmp_path / "missing"])
    assert before == startup.fingerprint([tmp_path])
    (tmp_path / "sub" / "a.conf").write_text("y")  # same size, new mtime
    os.utime(tmp_path / "sub" / "a.conf", ns=(1, 1))
    assert startup.fingerprint([tmp_path]) != before


@needs_nginx
def test_wait_until_valid_returns_once_the_users_file_is_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    nginx, settings = prepared(tmp_path, include=True)
    users = settings.conf_dir / "site.conf"
    users.write_text("not nginx;\n")
    stop = threading.Event()
    done: list[bool] = []
    waiter = threading.Thread(
        target=lambda: done.append(startup.wait_until_valid(settings, nginx, logging.getLogger("t"), stop, 0.02)),
        daemon=True,
    )
    waiter.start()
    try:
        time.sleep(0.5)
        assert done == []  # still waiting, and it said why once, not at every look
        assert len(caplog.messages) == 1 and caplog.messages[0].endswith(f"{users}:1")
        users.write_text("# fixed\n")
        waiter.join(10)
        assert done == [True]
        assert caplog.messages[1:] == ["nginx -t passes again: starting nginx"]
    finally:
        stop.set()
        waiter.join(10)


@needs_nginx
def test_wait_until_valid_stops_when_told(tmp_path: Path) -> None:
    nginx, settings = prepared(tmp_path, include=True)
    (settings.conf_dir / "site.conf").write_text("not nginx;\n")
    stop = threading.Event()
    stop.set()
    assert startup.wait_until_valid(settings, nginx, logging.getLogger("t"), stop, 0.02) is False


@needs_nginx
def test_wait_until_valid_returns_at_once_when_all_is_well(tmp_path: Path) -> None:
    nginx, settings = prepared(tmp_path, include=True)
    assert startup.wait_until_valid(settings, nginx, logging.getLogger("t"), threading.Event(), 60) is True


@needs_nginx
def test_check_never_removes_a_copy_of_a_generated_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A generated file copied to pin it carries the marker, but the watcher did not write it under
    its name: nginx -t fails on the duplicate upstream, and the copy is the user's to fix."""
    nginx, settings = prepared(tmp_path, include=True)
    pinned = settings.conf_dir / "pinned.conf"
    pinned.write_text(UPSTREAMS)
    assert not startup.check(settings, nginx, logging.getLogger("t"))
    assert pinned.read_text() == UPSTREAMS
    assert caplog.messages[0].startswith("nginx -t fails because of a file that dynamic-nginx did not generate")
    assert 'duplicate upstream "web.upstream"' in caplog.messages[0]
