"""rundir: one owner of the run dir's file names; bash reads the same list, and nothing names them by hand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from dynamic_nginx import rundir
from dynamic_nginx.settings import from_env

# The image's copies (the test stage is built on it), else the repository's.
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = next(p for p in (Path("/usr/local/lib/dynamic-nginx"), ROOT / "entrypoint" / "bin") if p.is_dir())
SUPERVISORD_CONF = next(p for p in (Path("/etc/supervisor/supervisord.conf"), ROOT / "supervisord.conf") if p.is_file())
BASH_SCRIPTS = ("start", "run-nginx", "on-fatal")


def sourced(environ: dict[str, str]) -> dict[str, str]:
    """The variables bash has after sourcing the fragment."""
    script = rundir.shell() + 'for v in run ${!run_*}; do printf "%s=%s\\n" "$v" "${!v}"; done\n'
    script += 'printf "stale=%s\\n" "${run_stale_at_start[*]}"\n'
    out = subprocess.run(["bash", "-c", script], env=environ, capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.mark.parametrize(
    ("environ", "root"),
    [
        pytest.param({}, "/run/dynamic-nginx", id="default"),
        pytest.param({"DYNAMIC_NGINX_RUN_DIR": ""}, "/run/dynamic-nginx", id="empty keeps the default, as in Python"),
        pytest.param({"DYNAMIC_NGINX_RUN_DIR": "/tmp/my run"}, "/tmp/my run", id="moved, with a space"),
    ],
)
def test_bash_and_python_agree_on_every_path(environ: dict[str, str], root: str) -> None:
    variables = sourced(environ)
    assert variables["run"] == root == str(from_env(environ).run_dir)
    assert from_env(environ).nginx_args_file == Path(variables["run_nginx_args"])
    for name, value in rundir.NAMES.items():
        assert variables[f"run_{name}"] == f"{root}/{value}", name
    assert variables["stale"] == " ".join(f"{root}/{value}" for value in rundir.STALE_AT_START)


def test_every_name_is_listed_once() -> None:
    constants = {v for k, v in vars(rundir).items() if k.isupper() and isinstance(v, str) and k != "VARIABLE"}
    assert set(rundir.NAMES.values()) == constants
    assert len(set(rundir.NAMES.values())) == len(rundir.NAMES)
    assert set(rundir.STALE_AT_START) <= constants


@pytest.mark.parametrize("script", BASH_SCRIPTS)
def test_the_scripts_name_no_file_in_the_run_dir_by_hand(script: str) -> None:
    text = (SCRIPTS / script).read_text()
    assert 'rundir.sh"' in text
    assert not re.findall(r"\$\{?run\}?/", text), "use the run_* names from rundir.sh"
    assert "/run/dynamic-nginx" not in text


def test_the_image_sources_the_fragment_of_this_package() -> None:
    installed = Path("/usr/local/lib/dynamic-nginx/rundir.sh")
    if not installed.exists():
        pytest.fail("run in the image's test stage, which has the generated rundir.sh")
    assert installed.read_text() == rundir.shell()


def test_supervisord_conf_names_its_files_in_the_run_dir() -> None:
    text = SUPERVISORD_CONF.read_text()
    named = re.findall(r"%\(ENV_DYNAMIC_NGINX_RUN_DIR\)s/([\w./-]+)", text)
    assert sorted(set(named)) == sorted({rundir.SUPERVISOR_SOCK, rundir.SUPERVISOR_PID})
    assert "/run/dynamic-nginx" not in text
