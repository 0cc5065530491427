"""The shell side: which nginx command lines start the server (bin/start asks the first render), and the envsubst hook's settings.

The scripts run for real (sh, bash, find, envsubst); only their folders point into tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dynamic_nginx
import pytest

_REPO = Path(__file__).resolve().parents[2] / "entrypoint"
# In the image's test stage the scripts are installed; on a developer's host they are in the work tree.
HOOKS = _REPO / "docker-entrypoint.d" if _REPO.is_dir() else Path("/docker-entrypoint.d")
ENVSUBST_HOOK = HOOKS / "20-envsubst-on-templates.sh"


@pytest.mark.parametrize(
    ("command", "serves"),
    [
        pytest.param(["nginx", "-g", "daemon off;"], True, id="the image's CMD"),
        pytest.param(["nginx-debug", "-g", "daemon off;"], True, id="nginx-debug"),
        pytest.param(["nginx"], True, id="no options"),
        pytest.param(["nginx", "-c", "/etc/my.conf", "-g", "daemon off;"], True, id="-c file"),
        pytest.param(["nginx", "-c", "-t"], True, id="-t as the value of -c"),
        pytest.param(["nginx", "-gdaemon off;"], True, id="glued -g value"),
        pytest.param(["nginx", "-p", "/srv/", "-e", "stderr", "-q"], True, id="-p, -e and -q"),
        pytest.param(["nginx", "-t"], False, id="-t"),
        pytest.param(["nginx", "-T"], False, id="-T"),
        pytest.param(["nginx", "-tq"], False, id="-tq glued"),
        pytest.param(["nginx", "-q", "-t"], False, id="-q -t"),
        pytest.param(["nginx", "-v"], False, id="-v"),
        pytest.param(["nginx", "-V"], False, id="-V"),
        pytest.param(["nginx", "-h"], False, id="-h"),
        pytest.param(["nginx", "-?"], False, id="-?"),
        pytest.param(["nginx", "-s", "reload"], False, id="-s reload"),
        pytest.param(["nginx", "-g", "daemon off;", "-t"], False, id="-t after -g"),
        pytest.param(["nginx", "-x"], False, id="an option nginx refuses: nginx says so"),
        pytest.param(["nginx", "-c"], False, id="-c without its file: nginx says so"),
    ],
)
def test_which_nginx_commands_start_a_server(command: list[str], serves: bool) -> None:
    """bin/start's question, asked as bin/start asks it: the first render's first line says."""
    package = Path(dynamic_nginx.__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "dynamic_nginx.start", *command],
        stdin=subprocess.DEVNULL,  # no `go` from bin/start: it answers and renders nothing
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(package)},
        check=False,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "serve\n" if serves else "exec\n"), result.stderr


def envsubst(tmp_path: Path, templates: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "templates"
    for name, text in templates.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (tmp_path / "out").mkdir(exist_ok=True)
    environ = {
        "PATH": os.environ["PATH"],
        "NGINX_ENVSUBST_TEMPLATE_DIR": str(folder),
        "NGINX_ENVSUBST_OUTPUT_DIR": str(tmp_path / "out"),
        **env,
    }
    return subprocess.run(
        ["sh", str(ENVSUBST_HOOK)], env=environ, capture_output=True, text=True, timeout=30, check=True
    )


def outputs(tmp_path: Path) -> dict[str, str]:
    out = tmp_path / "out"
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def test_envsubst_replaces_set_variables_only_and_keeps_subfolders(tmp_path: Path) -> None:
    envsubst(
        tmp_path,
        {
            "default.conf.template": "listen ${PORT}; return 200 $uri ${UNSET};\n",
            "sub/x.conf.template": "$PORT\n",
        },
        PORT="8080",
    )
    assert outputs(tmp_path) == {
        "default.conf": "listen 8080; return 200 $uri ${UNSET};\n",
        "sub/x.conf": "8080\n",
    }


def test_envsubst_filter_and_suffix(tmp_path: Path) -> None:
    envsubst(
        tmp_path,
        {"a.html.tpl": "${SHOWN_A} ${HIDDEN_B}\n", "b.conf.template": "not mine\n"},
        NGINX_ENVSUBST_TEMPLATE_SUFFIX=".tpl",
        NGINX_ENVSUBST_FILTER="^SHOWN_",
        SHOWN_A="a",
        HIDDEN_B="b",
    )
    assert outputs(tmp_path) == {"a.html": "a ${HIDDEN_B}\n"}


@pytest.mark.parametrize("suffix", [".template", ".j2", ""], ids=["default suffix", ".j2 suffix", "empty suffix"])
def test_envsubst_never_touches_jinja_templates(tmp_path: Path, suffix: str) -> None:
    envsubst(tmp_path, {"web.conf.j2": "{{ x }} ${PORT}\n"}, NGINX_ENVSUBST_TEMPLATE_SUFFIX=suffix, PORT="1")
    assert outputs(tmp_path) == {}


def test_envsubst_unwritable_output_is_an_error_only_with_templates_to_write(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    unwritable = str(tmp_path / "a-file" / "out")  # cannot exist, so it is not writable, even for root
    quiet = envsubst(tmp_path, {"web.conf.j2": "{{ x }}\n"}, NGINX_ENVSUBST_OUTPUT_DIR=unwritable)
    assert quiet.stdout == ""
    loud = envsubst(tmp_path, {"a.conf.template": "x\n"}, NGINX_ENVSUBST_OUTPUT_DIR=unwritable)
    assert loud.stdout == (
        f"20-envsubst-on-templates.sh: ERROR: {tmp_path}/templates exists, but {unwritable} is not writable\n"
    )


def test_local_resolvers_exports_the_nameservers_of_resolv_conf() -> None:
    resolv = Path("/etc/resolv.conf")
    if not resolv.is_file():
        pytest.skip("no /etc/resolv.conf")
    expected = " ".join(
        f"[{line.split()[1]}]" if ":" in line.split()[1] else line.split()[1]
        for line in resolv.read_text().splitlines()
        if len(line.split()) > 1 and line.split()[0] == "nameserver"
    )
    script = f'. {HOOKS}/15-local-resolvers.envsh; printf "%s|" "${{NGINX_LOCAL_RESOLVERS-unset}}"'
    on = subprocess.run(
        ["sh", "-c", script],
        env={"NGINX_ENTRYPOINT_LOCAL_RESOLVERS": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    off = subprocess.run(["sh", "-c", script], env={}, capture_output=True, text=True, check=True, timeout=10)
    assert on.stdout == f"{expected}|"
    assert off.stdout == "unset|"
