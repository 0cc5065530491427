"""command: the one parser of nginx's command line, held against what nginx itself does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from dynamic_nginx import command
from dynamic_nginx.command import BadTimeout, parse, with_shutdown_timeout
from support import NGINX, needs_nginx

D = "daemon off;"


@pytest.mark.parametrize(
    ("argv", "serves", "conf", "options", "error"),
    [
        pytest.param(["nginx", "-g", D], True, "/etc/nginx/nginx.conf", ["-g", D], "", id="the image's CMD"),
        pytest.param(["nginx"], True, "/etc/nginx/nginx.conf", [], "", id="no options"),
        pytest.param(["nginx-debug", "-g", D], True, "/etc/nginx/nginx.conf", ["-g", D], "", id="nginx-debug"),
        pytest.param(["nginx", "-c", "/srv/n.conf"], True, "/srv/n.conf", ["-c", "/srv/n.conf"], "", id="-c path"),
        pytest.param(["nginx", "-c/srv/n.conf"], True, "/srv/n.conf", ["-c", "/srv/n.conf"], "", id="-cpath"),
        pytest.param(
            ["nginx", "-c", "my.conf"],
            True,
            "/usr/share/nginx/my.conf",
            ["-c", "my.conf"],
            "",
            id="relative -c: against the compiled prefix, not the working directory",
        ),
        pytest.param(
            ["nginx", "-p", "/srv", "-c", "my.conf"],
            True,
            "/srv/my.conf",
            ["-p", "/srv", "-c", "my.conf"],
            "",
            id="relative -c with -p (no trailing slash)",
        ),
        pytest.param(
            ["nginx", "-c", "my.conf", "-p/srv/"],
            True,
            "/srv/my.conf",
            ["-p", "/srv/", "-c", "my.conf"],
            "",
            id="-p after -c still counts",
        ),
        pytest.param(
            ["nginx", "-c", "/a.conf", "-c", "/b.conf"], True, "/b.conf", ["-c", "/b.conf"], "", id="the last -c wins"
        ),
        pytest.param(
            ["nginx", "-g", "worker_processes 2;", "-g", D],
            True,
            "/etc/nginx/nginx.conf",
            ["-g", D],
            "",
            id="-g repeated: nginx reads only the last",
        ),
        pytest.param(
            ["nginx", "-e", "stderr", "-g", D],
            True,
            "/etc/nginx/nginx.conf",
            ["-e", "stderr", "-g", D],
            "",
            id="-e",
        ),
        pytest.param(["nginx", "-q", "-g", D], True, "/etc/nginx/nginx.conf", ["-g", D], "", id="-q is no config"),
        pytest.param(["nginx", "-t"], False, "/etc/nginx/nginx.conf", [], "", id="-t"),
        pytest.param(["nginx", "-T"], False, "/etc/nginx/nginx.conf", [], "", id="-T"),
        pytest.param(["nginx", "-tq"], False, "/etc/nginx/nginx.conf", [], "", id="glued flags"),
        pytest.param(["nginx", "-qt", "-c", "/x.conf"], False, "/x.conf", ["-c", "/x.conf"], "", id="-qt then -c"),
        pytest.param(["nginx", "-ct"], True, "/usr/share/nginx/t", ["-c", "t"], "", id="-ct is -c t"),
        pytest.param(["nginx", "-v"], False, "/etc/nginx/nginx.conf", [], "", id="-v"),
        pytest.param(["nginx", "-V"], False, "/etc/nginx/nginx.conf", [], "", id="-V"),
        pytest.param(["nginx", "-h"], False, "/etc/nginx/nginx.conf", [], "", id="-h"),
        pytest.param(["nginx", "-?"], False, "/etc/nginx/nginx.conf", [], "", id="-?"),
        pytest.param(["nginx", "-s", "reload"], False, "/etc/nginx/nginx.conf", [], "", id="-s reload"),
        pytest.param(["nginx", "-sstop"], False, "/etc/nginx/nginx.conf", [], "", id="-sstop"),
        pytest.param(
            ["nginx", "-g", "pid /x; #-t"],
            True,
            "/etc/nginx/nginx.conf",
            ["-g", "pid /x; #-t"],
            "",
            id="a value that looks like a flag",
        ),
        pytest.param(["nginx", "-"], True, "/etc/nginx/nginx.conf", [], "", id="a lone dash is nothing"),
        pytest.param(["nginx", "-x"], False, "/etc/nginx/nginx.conf", [], 'invalid option: "x"', id="unknown flag"),
        pytest.param(["nginx", "--"], False, "/etc/nginx/nginx.conf", [], 'invalid option: "-"', id="--"),
        pytest.param(["nginx", "foo"], False, "/etc/nginx/nginx.conf", [], 'invalid option: "foo"', id="no option"),
        pytest.param(
            ["nginx", "-c"],
            False,
            "/etc/nginx/nginx.conf",
            [],
            'option "-c" requires a value',
            id="-c without its value",
        ),
        pytest.param(
            ["nginx", "-g", D, "-p"],
            False,
            "/etc/nginx/nginx.conf",
            ["-g", D],
            'option "-p" requires a value',
            id="-p without its value",
        ),
    ],
)
def test_parse(argv: list[str], serves: bool, conf: str, options: list[str], error: str) -> None:
    parsed = parse(argv)
    assert (parsed.serves, parsed.conf, parsed.config_options, parsed.error) == (serves, conf, options, error)
    assert parsed.binary == argv[0]


# Shapes whose configuration file nginx names in `nginx -t`'s output (it runs no server).
REAL_SHAPES = [
    ["-c", "{tmp}/nginx.conf"],
    ["-c{tmp}/nginx.conf"],
    ["-p", "{tmp}", "-c", "nginx.conf"],
    ["-p{tmp}/", "-c", "nginx.conf"],
    ["-c", "nginx.conf", "-p", "{tmp}"],
    ["-c", "/nowhere.conf", "-c", "{tmp}/nginx.conf"],
    ["-c", "nginx.conf"],
    ["-c", "sub/../nginx.conf", "-p", "{tmp}"],
]


@needs_nginx
@pytest.mark.parametrize("shape", REAL_SHAPES, ids=[" ".join(s) for s in REAL_SHAPES])
def test_conf_is_the_file_nginx_loads(tmp_path: Path, shape: list[str]) -> None:
    """The file nginx -t reports for the options is the one the parser names."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "nginx.conf").write_text(f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n")
    options = [part.format(tmp=tmp_path) for part in shape]
    parsed = parse([str(NGINX), *options])
    result = subprocess.run(
        [str(NGINX), *parsed.config_options, "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    named = re.findall(r"configuration file (\S+) test", result.stderr)
    assert named and Path(named[-1]).resolve() == Path(parsed.conf).resolve(), result.stderr


@needs_nginx
def test_default_prefix_is_the_compiled_one() -> None:
    version = subprocess.run([str(NGINX), "-V"], capture_output=True, text=True, timeout=30, check=True).stderr
    assert f"--prefix={command.DEFAULT_PREFIX.rstrip('/')} " in version
    assert f"--conf-path={command.DEFAULT_CONF} " in version


@needs_nginx
@pytest.mark.parametrize(
    "argv", [["-x"], ["--"], ["foo"], ["-c"], ["-g", D, "-p"]], ids=["-x", "--", "foo", "-c", "-p"]
)
def test_errors_are_the_ones_nginx_refuses(argv: list[str]) -> None:
    """What the parser calls an error, nginx refuses too (it exits 1 before reading any file)."""
    assert parse(["nginx", *argv]).error
    result = subprocess.run([str(NGINX), *argv], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1 and "nginx: " in result.stderr


T = "worker_shutdown_timeout 3s;"


@pytest.mark.parametrize(
    ("argv", "timeout", "conf", "result"),
    [
        pytest.param(["nginx", "-g", D], None, "", ["nginx", "-g", D], id="unset: unchanged"),
        pytest.param(["nginx", "-g", D], "none", "", ["nginx", "-g", D], id="none: unchanged"),
        pytest.param(["nginx", "-g", D], "3s", "", ["nginx", "-g", f"{D} {T}"], id="added to -g"),
        pytest.param(["nginx", f"-g{D}"], "3s", "", ["nginx", f"-g{D} {T}"], id="added to a glued -g"),
        pytest.param(
            ["nginx", "-g", "worker_processes 2;", "-g", D],
            "3s",
            "",
            ["nginx", "-g", "worker_processes 2;", "-g", f"{D} {T}"],
            id="added to the last -g, the one nginx reads",
        ),
        pytest.param(["nginx"], "3s", "", ["nginx", "-g", T], id="a -g of its own when there is none"),
        pytest.param(
            ["nginx", "-g", "worker_shutdown_timeout 9s;"],
            "3s",
            "",
            ["nginx", "-g", "worker_shutdown_timeout 9s;"],
            id="the command sets it",
        ),
        pytest.param(
            ["nginx", "-g", D],
            "3s",
            "worker_shutdown_timeout 9s;\nevents {}\n",
            ["nginx", "-g", D],
            id="the configuration sets it",
        ),
        pytest.param(
            ["nginx", "-g", D],
            "3s",
            "# worker_shutdown_timeout 9s;\n",
            ["nginx", "-g", f"{D} {T}"],
            id="commented out in the configuration",
        ),
    ],
)
def test_with_shutdown_timeout(argv: list[str], timeout: str | None, conf: str, result: list[str]) -> None:
    assert with_shutdown_timeout(parse(argv), timeout, conf) == result


@pytest.mark.parametrize("timeout", ["soon", "3 s", "1234567s", "-1s"])
def test_a_timeout_that_is_no_nginx_time_is_refused_by_name(timeout: str) -> None:
    with pytest.raises(BadTimeout, match=f"DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT={re.escape(timeout)} is not"):
        with_shutdown_timeout(parse(["nginx", "-g", D]), timeout)


def test_nginx_command_reads_the_configuration_the_command_names(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("worker_shutdown_timeout 1m;\n")
    environ = {"DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT": "3s"}
    assert command.nginx_command(["nginx", "-c", str(conf)], environ) == ["nginx", "-c", str(conf)]
    assert command.nginx_command(["nginx", "-p", str(tmp_path), "-c", "nginx.conf"], environ)[-2:] == [
        "-c",
        "nginx.conf",
    ]
    assert command.nginx_command(["nginx", "-c", str(tmp_path / "other.conf")], environ)[-1] == T


@pytest.mark.parametrize(
    ("content", "argv"),
    [
        pytest.param(b"nginx\0-g\0daemon off;\0", ["nginx", "-g", D], id="as it is recorded"),
        pytest.param(
            b"nginx\0-g\0daemon off;\nerror_log stderr;\0",
            ["nginx", "-g", "daemon off;\nerror_log stderr;"],
            id="newlines inside an argument survive",
        ),
        pytest.param(b"nginx-debug", ["nginx-debug"], id="no trailing NUL"),
        pytest.param(b"", ["nginx", "-g", D], id="empty file: the image's CMD"),
        pytest.param(None, ["nginx", "-g", D], id="no file: the image's CMD"),
        pytest.param(b"nginx\0-c\0/etc/\xff.conf\0", ["nginx", "-c", "/etc/\udcff.conf"], id="not UTF-8"),
    ],
)
def test_read(tmp_path: Path, content: bytes | None, argv: list[str]) -> None:
    path = tmp_path / "nginx.args"
    if content is not None:
        path.write_bytes(content)
    assert list(command.read(path).argv) == argv
    if content:
        path.write_bytes(command.encode(argv))
        assert list(command.read(path).argv) == argv
