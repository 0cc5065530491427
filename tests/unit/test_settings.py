"""settings: one frozen object from `DYNAMIC_NGINX_*` variables, with errors that name the variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import settings as S
from dynamic_nginx.settings import Settings, SettingsError, from_env


def test_defaults() -> None:
    assert from_env({}) == Settings()
    assert Settings() == Settings(
        conf_dir=Path("/etc/nginx/conf.d"),
        builtin_templates=Path("/usr/share/dynamic-nginx/templates"),
        user_templates=Path("/etc/nginx/templates"),
        run_dir=Path("/run/dynamic-nginx"),
        watch_dirs=(Path("/etc/nginx"),),
        container="",
        project="",
        debounce_min=0.02,
        debounce_max=0.5,
        reload_debounce_min=0.05,
        reload_debounce_max=1.0,
        resync_interval=30.0,
        nginx_pid_file=Path("/run/nginx.pid"),
        nginx_args_file=Path("/run/dynamic-nginx/nginx.args"),
    )


@pytest.mark.parametrize(
    ("variable", "raw", "field", "value"),
    [
        pytest.param("CONF_DIR", "/srv/conf.d", "conf_dir", Path("/srv/conf.d"), id="CONF_DIR"),
        pytest.param(
            "BUILTIN_TEMPLATES", "/srv/t", "builtin_templates", Path("/srv/t"), id="BUILTIN_TEMPLATES"
        ),
        pytest.param("USER_TEMPLATES", "/srv/u", "user_templates", Path("/srv/u"), id="USER_TEMPLATES"),
        pytest.param("RUN_DIR", "/tmp/dn", "run_dir", Path("/tmp/dn"), id="RUN_DIR"),
        pytest.param("WATCH_DIRS", "/a:/b", "watch_dirs", (Path("/a"), Path("/b")), id="WATCH_DIRS"),
        pytest.param(
            "WATCH_DIRS",
            "/a::/b:",
            "watch_dirs",
            (Path("/a"), Path("/b")),
            id="WATCH_DIRS empty parts dropped",
        ),
        pytest.param("CONTAINER", " shop-proxy-1 ", "container", "shop-proxy-1", id="CONTAINER stripped"),
        pytest.param("PROJECT", "shop", "project", "shop", id="PROJECT"),
        pytest.param("RETIRE_EARLY", "false", "retire_early", False, id="RETIRE_EARLY off"),
        pytest.param("PROBE_PORTS", "no", "probe_ports", False, id="PROBE_PORTS off"),
        pytest.param("DEBOUNCE_MIN", "0", "debounce_min", 0.0, id="DEBOUNCE_MIN zero"),
        pytest.param("DEBOUNCE_MAX", "2.5", "debounce_max", 2.5, id="DEBOUNCE_MAX"),
        pytest.param("RELOAD_DEBOUNCE_MIN", "0.2", "reload_debounce_min", 0.2, id="RELOAD_DEBOUNCE_MIN"),
        pytest.param(
            "RELOAD_DEBOUNCE_MAX", "3600", "reload_debounce_max", 3600.0, id="RELOAD_DEBOUNCE_MAX at limit"
        ),
        pytest.param(
            "RESYNC_INTERVAL", "1e1", "resync_interval", 10.0, id="RESYNC_INTERVAL in exponent form"
        ),
        pytest.param(
            "NGINX_PID_FILE", "/tmp/n.pid", "nginx_pid_file", Path("/tmp/n.pid"), id="NGINX_PID_FILE"
        ),
        pytest.param(
            "NGINX_ARGS_FILE", "/tmp/n.args", "nginx_args_file", Path("/tmp/n.args"), id="NGINX_ARGS_FILE"
        ),
    ],
)
def test_each_variable(variable: str, raw: str, field: str, value: Any) -> None:
    settings = from_env({f"DYNAMIC_NGINX_{variable}": raw})
    assert getattr(settings, field) == value
    assert settings == dataclasses.replace(Settings(), **{field: value})  # nothing else moved


def test_empty_value_keeps_the_default() -> None:
    assert from_env({"DYNAMIC_NGINX_CONF_DIR": "", "DYNAMIC_NGINX_DEBOUNCE_MIN": ""}) == Settings()


def test_other_variables_are_ignored() -> None:
    assert (
        from_env({"NGINX_CONF_DIR": "/x", "DYNAMIC_NGINX_conf_dir": "/y", "DYNAMIC_NGINX_BOGUS": "1"})
        == Settings()
    )


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMIC_NGINX_PROJECT", "from-environ")
    assert from_env().project == "from-environ"


@pytest.mark.parametrize(
    "variable",
    ["DEBOUNCE_MIN", "DEBOUNCE_MAX", "RELOAD_DEBOUNCE_MIN", "RELOAD_DEBOUNCE_MAX", "RESYNC_INTERVAL"],
)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("abc", id="word"),
        pytest.param("1s", id="unit suffix"),
        pytest.param("-1", id="negative"),
        pytest.param("3600.5", id="over an hour"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="infinity"),
        pytest.param("1,5", id="decimal comma"),
    ],
)
def test_bad_seconds_name_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env({f"DYNAMIC_NGINX_{variable}": raw})
    assert str(raised.value) == (
        f"DYNAMIC_NGINX_{variable}={raw!r} is not a number of seconds between 0 and 3600"
    )


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        pytest.param(
            {"DYNAMIC_NGINX_DEBOUNCE_MIN": "2", "DYNAMIC_NGINX_DEBOUNCE_MAX": "1"},
            ("DYNAMIC_NGINX_DEBOUNCE_MIN", "DYNAMIC_NGINX_DEBOUNCE_MAX"),
            id="watcher min above max",
        ),
        pytest.param(
            {"DYNAMIC_NGINX_DEBOUNCE_MAX": "0.01"},
            ("DYNAMIC_NGINX_DEBOUNCE_MIN", "DYNAMIC_NGINX_DEBOUNCE_MAX"),
            id="watcher max below the default min",
        ),
        pytest.param(
            {"DYNAMIC_NGINX_RELOAD_DEBOUNCE_MIN": "5"},
            ("DYNAMIC_NGINX_RELOAD_DEBOUNCE_MIN", "DYNAMIC_NGINX_RELOAD_DEBOUNCE_MAX"),
            id="reloader min above the default max",
        ),
    ],
)
def test_min_above_max_is_refused(environ: dict[str, str], names: tuple[str, str]) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env(environ)
    assert str(raised.value) == f"{names[0]} must not exceed {names[1]}"


def test_min_equal_to_max_is_fine() -> None:
    settings = from_env({"DYNAMIC_NGINX_DEBOUNCE_MIN": "0.5", "DYNAMIC_NGINX_DEBOUNCE_MAX": "0.5"})
    assert (settings.debounce_min, settings.debounce_max) == (0.5, 0.5)


def test_the_503_server_needs_nothing_outside_conf_d() -> None:
    """A loopback port whatever the run dir: plain nginx can listen on it after a rollback."""
    assert from_env({"DYNAMIC_NGINX_RUN_DIR": "/tmp/dn"}).empty_server == "127.0.0.1:29503"


@pytest.mark.parametrize(
    ("environ", "parameters"),
    [
        pytest.param({}, "max_fails=1 fail_timeout=1s", id="the passive safety net by default"),
        pytest.param({"DYNAMIC_NGINX_MAX_FAILS": "3", "DYNAMIC_NGINX_FAIL_TIMEOUT": "10s"},
                     "max_fails=3 fail_timeout=10s", id="overridden"),
        pytest.param({"DYNAMIC_NGINX_MAX_FAILS": "none", "DYNAMIC_NGINX_FAIL_TIMEOUT": "None"}, "",
                     id="none leaves nginx's own defaults"),
    ],
)
def test_server_defaults(environ: dict[str, str], parameters: str) -> None:
    assert S.from_env(environ).server_defaults.parameters == parameters


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("DYNAMIC_NGINX_MAX_FAILS", "-1", id="negative max_fails"),
        pytest.param("DYNAMIC_NGINX_MAX_FAILS", "1; x", id="max_fails with a semicolon"),
        pytest.param("DYNAMIC_NGINX_FAIL_TIMEOUT", "500ms", id="fail_timeout in milliseconds"),
        pytest.param("DYNAMIC_NGINX_FAIL_TIMEOUT", "3s }", id="fail_timeout with a brace"),
    ],
)
def test_bad_server_defaults_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(S.SettingsError, match=f"^{name}="):
        S.from_env({name: value})
