"""settings: one frozen object from `DYNAMIC_NGINX_*` variables, with errors that name the variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import settings as S
from dynamic_nginx.settings import Settings, SettingsError, Wait, from_env


def test_defaults() -> None:
    assert from_env({}) == Settings()
    settings = Settings()
    assert (settings.conf_dir, settings.run_dir, settings.nginx_args_file) == (
        Path("/etc/nginx/conf.d"),
        Path("/run/dynamic-nginx"),
        Path("/run/dynamic-nginx/nginx.args"),
    )
    assert (settings.container, settings.project, settings.scope) == ("", "", "project")
    assert (settings.max_fails, settings.fail_timeout, settings.probe_ports) == (1, "1s", True)
    assert (settings.max_old_generations, settings.resync_interval, settings.log_level) == (10, 30.0, "info")


def test_the_wait_derives_the_timings_of_before() -> None:
    """The defaults of the eleven timing variables WAIT replaced, unchanged."""
    settings = Settings()
    assert settings.wait == Wait(0.02, 0.5)
    assert (settings.debounce_min, settings.debounce_max) == (0.02, 0.5)
    assert (settings.reload_debounce_min, settings.reload_debounce_max) == (0.05, 1.0)
    assert (settings.burst_starts, settings.burst_quiet, settings.burst_max) == (3, 1.0, 6.0)


@pytest.mark.parametrize(
    ("variable", "raw", "field", "value"),
    [
        pytest.param("CONTAINER", " shop-proxy-1 ", "container", "shop-proxy-1", id="CONTAINER stripped"),
        pytest.param("PROJECT", "shop", "project", "shop", id="PROJECT"),
        pytest.param("SCOPE", "ALL", "scope", "all", id="SCOPE any case"),
        pytest.param("MODE", " Swarm ", "mode", "swarm", id="MODE"),
        pytest.param("MODE", "compose", "mode", "compose", id="MODE compose"),
        pytest.param("MAX_FAILS", "3", "max_fails", 3, id="MAX_FAILS"),
        pytest.param("MAX_FAILS", "none", "max_fails", None, id="MAX_FAILS none"),
        pytest.param("FAIL_TIMEOUT", "10s", "fail_timeout", "10s", id="FAIL_TIMEOUT"),
        pytest.param("FAIL_TIMEOUT", "None", "fail_timeout", None, id="FAIL_TIMEOUT none"),
        pytest.param("MAX_OLD_GENERATIONS", "0", "max_old_generations", 0, id="MAX_OLD_GENERATIONS zero"),
        pytest.param("WAIT", "0.1:2", "wait", Wait(0.1, 2.0), id="WAIT min:max"),
        pytest.param("WAIT", "20ms:1s", "wait", Wait(0.02, 1.0), id="WAIT with units"),
        pytest.param("WAIT", " 0:0 ", "wait", Wait(0.0, 0.0), id="WAIT no wait at all"),
        pytest.param("WAIT", "0.5", "wait", Wait(0.5, 2.0), id="WAIT min alone: max is 4 times min"),
        pytest.param("WAIT", "30", "wait", Wait(30.0, 60.0), id="WAIT min alone: max capped"),
        pytest.param("WAIT", "60:60", "wait", Wait(60.0, 60.0), id="WAIT at the limit"),
        pytest.param("RESYNC_INTERVAL", "1e1", "resync_interval", 10.0, id="RESYNC_INTERVAL in exponent form"),
        pytest.param("PROBE_PORTS", "no", "probe_ports", False, id="PROBE_PORTS off"),
        pytest.param("PROBE_PORTS", "ON", "probe_ports", True, id="PROBE_PORTS on"),
        pytest.param("LOG_LEVEL", "Debug", "log_level", "debug", id="LOG_LEVEL"),
        pytest.param("CONF_DIR", "/srv/conf.d", "conf_dir", Path("/srv/conf.d"), id="CONF_DIR"),
        pytest.param("RUN_DIR", "/tmp/dn", "run_dir", Path("/tmp/dn"), id="RUN_DIR"),
        pytest.param("STATUS_LISTEN", " 127.0.0.1:8081 ", "status_listen", "127.0.0.1:8081", id="STATUS_LISTEN"),
    ],
)
def test_each_variable(variable: str, raw: str, field: str, value: Any) -> None:
    settings = from_env({f"DYNAMIC_NGINX_{variable}": raw})
    assert getattr(settings, field) == value
    assert settings == dataclasses.replace(Settings(), **{field: value})  # nothing else moved


def test_every_variable_is_in_the_table_above() -> None:
    tested = {
        "CONTAINER",
        "PROJECT",
        "SCOPE",
        "MODE",
        "MAX_FAILS",
        "FAIL_TIMEOUT",
        "MAX_OLD_GENERATIONS",
        "WAIT",
        "RESYNC_INTERVAL",
        "PROBE_PORTS",
        "LOG_LEVEL",
        "CONF_DIR",
        "RUN_DIR",
        "STATUS_LISTEN",
    }
    assert set(S.VARIABLES) == tested


def test_the_run_dir_moves_every_file_in_it() -> None:
    """The nginx command file follows the run dir: nginx -t then sees the container's -c and -g."""
    settings = from_env({"DYNAMIC_NGINX_RUN_DIR": "/tmp/dn"})
    assert settings.nginx_args_file == Path("/tmp/dn/nginx.args")


def test_empty_value_keeps_the_default() -> None:
    assert (
        from_env({"DYNAMIC_NGINX_CONF_DIR": "", "DYNAMIC_NGINX_WAIT": "", "DYNAMIC_NGINX_DEBOUNCE_MIN": ""})
        == Settings()
    )


def test_other_variables_are_ignored() -> None:
    assert from_env({"NGINX_CONF_DIR": "/x", "DYNAMIC_NGINX_conf_dir": "/y", "DYNAMIC_NGINX_BOGUS": "1"}) == Settings()


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DYNAMIC_NGINX_PROJECT", "from-environ")
    assert from_env().project == "from-environ"


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
def test_bad_seconds_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env({"DYNAMIC_NGINX_RESYNC_INTERVAL": raw})
    assert str(raised.value) == (f"DYNAMIC_NGINX_RESYNC_INTERVAL={raw!r} is not a number of seconds between 0 and 3600")


WAIT_FIX = "use min:max in seconds, each from 0 to 60, such as 0.02:0.5 or 20ms:500ms"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("abc", id="a word"),
        pytest.param("1:2:3", id="three parts"),
        pytest.param(":1", id="no min"),
        pytest.param("1:", id="no max"),
        pytest.param("-1:2", id="negative"),
        pytest.param("0.1:61", id="over a minute"),
        pytest.param("1m:2m", id="minutes"),
        pytest.param("1e1:2e1", id="exponent form"),
        pytest.param("nan:inf", id="nan and infinity"),
        pytest.param("0,1:0,5", id="decimal commas"),
        pytest.param("0.1-0.5", id="a dash"),
        pytest.param("\uff11:\uff12", id="fullwidth digits"),
    ],
)
def test_a_bad_wait_names_the_variable_and_the_form(raw: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env({"DYNAMIC_NGINX_WAIT": raw})
    assert str(raised.value) == f"DYNAMIC_NGINX_WAIT={raw!r} is not a wait: {WAIT_FIX}"


def test_a_wait_whose_min_exceeds_its_max_is_refused() -> None:
    with pytest.raises(SettingsError) as raised:
        from_env({"DYNAMIC_NGINX_WAIT": "2:1"})
    assert str(raised.value) == f"DYNAMIC_NGINX_WAIT='2:1': min must not exceed max; {WAIT_FIX}"


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        pytest.param("SCOPE", "bogus", "DYNAMIC_NGINX_SCOPE='bogus' must be one of: project, all", id="SCOPE"),
        pytest.param("MODE", "k8s", "DYNAMIC_NGINX_MODE='k8s' must be one of: auto, compose, swarm", id="MODE"),
        pytest.param(
            "PROBE_PORTS", "none", "DYNAMIC_NGINX_PROBE_PORTS='none' must be true or false", id="PROBE_PORTS none"
        ),
        pytest.param(
            "PROBE_PORTS", "maybe", "DYNAMIC_NGINX_PROBE_PORTS='maybe' must be true or false", id="PROBE_PORTS word"
        ),
        pytest.param(
            "MAX_OLD_GENERATIONS",
            "1001",
            "DYNAMIC_NGINX_MAX_OLD_GENERATIONS='1001' is not a whole number from 0 to 1000",
            id="MAX_OLD_GENERATIONS too many",
        ),
        pytest.param(
            "MAX_OLD_GENERATIONS",
            "\u0661",
            "DYNAMIC_NGINX_MAX_OLD_GENERATIONS='\u0661' is not a whole number from 0 to 1000",
            id="MAX_OLD_GENERATIONS arabic-indic digit",
        ),
    ],
)
def test_bad_values_name_the_variable_and_what_is_allowed(variable: str, raw: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env({f"DYNAMIC_NGINX_{variable}": raw})
    assert str(raised.value) == message


@pytest.mark.parametrize("name", sorted(n for n, (_, fatal) in S.REMOVED.items() if fatal))
def test_a_removed_path_variable_is_fatal_and_names_what_to_do(name: str) -> None:
    with pytest.raises(SettingsError) as raised:
        from_env({f"DYNAMIC_NGINX_{name}": "/x"})
    assert str(raised.value).startswith(f"DYNAMIC_NGINX_{name}='/x' is no longer read: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", sorted(n for n, (_, fatal) in S.REMOVED.items() if not fatal))
def test_a_removed_timing_variable_warns_in_one_line_and_changes_nothing(name: str) -> None:
    environ = {f"DYNAMIC_NGINX_{name}": "2"}
    assert from_env(environ) == Settings()
    (line,) = S.removed(environ)
    assert line.startswith(f"DYNAMIC_NGINX_{name}='2' is no longer read, and is ignored: ")
    assert "DYNAMIC_NGINX_WAIT" in line or name == "RETIRE_EARLY"


def test_no_removed_variable_is_read_and_none_is_reported_unset() -> None:
    assert not set(S.REMOVED) & set(S.VARIABLES)
    assert S.removed({}) == []
    assert S.removed({"DYNAMIC_NGINX_DEBOUNCE_MIN": ""}) == []


def test_the_503_server_needs_nothing_outside_conf_d() -> None:
    """A loopback port whatever the run dir: plain nginx can listen on it after a rollback."""
    assert from_env({"DYNAMIC_NGINX_RUN_DIR": "/tmp/dn"}).empty_server == "127.0.0.1:29503"


@pytest.mark.parametrize(
    ("environ", "parameters"),
    [
        pytest.param({}, "max_fails=1 fail_timeout=1s", id="the passive safety net by default"),
        pytest.param(
            {"DYNAMIC_NGINX_MAX_FAILS": "3", "DYNAMIC_NGINX_FAIL_TIMEOUT": "10s"},
            "max_fails=3 fail_timeout=10s",
            id="overridden",
        ),
        pytest.param(
            {"DYNAMIC_NGINX_MAX_FAILS": "none", "DYNAMIC_NGINX_FAIL_TIMEOUT": "None"},
            "",
            id="none leaves nginx's own defaults",
        ),
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
