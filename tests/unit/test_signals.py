"""Signals and supervision: the log level is a checked setting, SIGHUP reaches the reloader as a
validated reload, and the wait for a valid configuration before nginx starts is bounded."""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

import pytest
from dynamic_nginx import startup
from dynamic_nginx.nginx import Nginx
from dynamic_nginx.reloader import Reloader
from dynamic_nginx.settings import SettingsError, from_env
from support import needs_nginx, nginx_command, settings_in


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        pytest.param("debug", "debug", id="debug"),
        pytest.param("INFO", "info", id="upper case"),
        pytest.param(" warning ", "warning", id="spaces around"),
        pytest.param("error", "error", id="error"),
        pytest.param("", "info", id="empty keeps the default"),
    ],
)
def test_log_level(raw: str, level: str) -> None:
    assert from_env({"DYNAMIC_NGINX_LOG_LEVEL": raw}).log_level == level


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("loud", id="a word"),
        pytest.param("warn", id="an abbreviation"),
        pytest.param("10", id="a number"),
        pytest.param("critical", id="a level the programs do not use"),
    ],
)
def test_bad_log_level_names_the_variable_the_value_and_what_is_allowed(raw: str) -> None:
    with pytest.raises(SettingsError) as error:
        from_env({"DYNAMIC_NGINX_LOG_LEVEL": raw})
    assert str(error.value) == f"DYNAMIC_NGINX_LOG_LEVEL={raw!r} must be one of: debug, info, warning, error"


def test_sighup_becomes_a_reload_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    reloader = Reloader(settings_in(tmp_path), Nginx(["nginx"], tmp_path / "nginx.pid"))
    answering = threading.Thread(target=reloader.answer_requests)
    answering.start()
    settled = threading.Event()
    threading.Thread(target=lambda: (reloader.debounce.settle(), settled.set()), daemon=True).start()
    try:
        assert not settled.wait(0.2)  # nothing asked, nothing to do
        reloader.asked.set()
        assert settled.wait(5)
        assert "SIGHUP: nginx -t, then reload" in caplog.messages
    finally:
        reloader.stop()
        answering.join(5)
    assert not answering.is_alive()


@needs_nginx
def test_wait_until_valid_gives_up_after_its_bound(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_in(tmp_path)
    nginx = Nginx(nginx_command(tmp_path, settings.conf_dir), settings.nginx_pid_file)
    (settings.conf_dir / "site.conf").write_text("not nginx;\n")
    ticks = itertools.count()
    with pytest.raises(startup.StillInvalid) as error:
        startup.wait_until_valid(
            settings,
            nginx,
            logging.getLogger("t"),
            threading.Event(),
            0.001,
            give_up_after=5,
            clock=lambda: float(next(ticks)),
        )
    assert str(error.value).endswith(f"{settings.conf_dir / 'site.conf'}:1")
    assert len(caplog.messages) == 1  # said once while waiting, not at every look
