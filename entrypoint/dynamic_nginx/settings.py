"""Settings: one frozen object, built once from `DYNAMIC_NGINX_*` variables.

Every knob of the watcher and the reloader lives here with its default, so the
environment reference (docs/environment.md) can be checked against one place.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import labels as L

PREFIX = "DYNAMIC_NGINX_"
LOG_LEVELS = ("debug", "info", "warning", "error")
# The built-in 503 server (see Settings.empty_server).
EMPTY_SERVER = "127.0.0.1:29503"
# nginx's stub_status, for the status server's /metrics: loopback only, next to the 503 server.
STATUS_STUB = "127.0.0.1:29504"


class SettingsError(ValueError):
    """A variable has a value we cannot use; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the watcher and reloader need to know, with the defaults of the image."""

    conf_dir: Path = Path("/etc/nginx/conf.d")
    builtin_templates: Path = Path("/usr/share/dynamic-nginx/templates")
    user_templates: Path = Path("/etc/nginx/templates")
    run_dir: Path = Path("/run/dynamic-nginx")
    watch_dirs: tuple[Path, ...] = (Path("/etc/nginx"),)
    container: str = ""
    project: str = ""
    scope: str = "project"
    max_fails: int | None = 1
    fail_timeout: str | None = "1s"
    debounce_min: float = 0.02
    debounce_max: float = 0.5
    reload_debounce_min: float = 0.05
    reload_debounce_max: float = 1.0
    reload_burst_min: float = 1.0
    reload_burst_max: float = 6.0
    reload_burst_window: float = 0.0
    probe_ports: bool = True
    retire_early: bool = True
    max_old_generations: int = 10
    burst_starts: int = 3
    burst_quiet: float = 1.0
    burst_max: float = 6.0
    resync_interval: float = 30.0
    nginx_pid_file: Path = Path("/run/nginx.pid")
    nginx_args_file: Path = Path("/run/dynamic-nginx/nginx.args")
    log_level: str = "info"
    status_listen: str = ""  # off; else a validated nginx `listen` address (see _listen)

    @property
    def server_defaults(self) -> L.ServerOptions:
        """Server parameters for containers whose labels set none (the passive safety net)."""
        return L.ServerOptions(max_fails=self.max_fails, fail_timeout=self.fail_timeout)

    @property
    def empty_server(self) -> str:
        """Where the built-in 503 server listens, for upstreams with no live server.

        A loopback TCP port, not a socket file: a generated file then needs
        nothing outside conf.d, so a conf.d this image wrote into still starts
        plain nginx after the image is gone (a socket path in the run dir does
        not exist there, and nginx exits when it cannot bind). The port is
        outside Linux's ephemeral range, where outgoing connections could hold
        it, and far from common services.
        """
        return EMPTY_SERVER

    @property
    def status_socket(self) -> Path:
        """Where the status server listens, for nginx's proxy_pass (a path nginx resolves per request)."""
        return self.run_dir / "status.sock"

    @property
    def status_stub(self) -> str:
        """Where nginx serves stub_status for the status server (see STATUS_STUB)."""
        return STATUS_STUB


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise SettingsError(
            f"{PREFIX}{name}={raw!r} is not a number of seconds between 0 and 3600"
        )
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in allowed:
        raise SettingsError(f"{PREFIX}{name}={raw!r} must be one of: {', '.join(allowed)}")
    return value


def _label_value(name: str, raw: str, parse: Callable[[str, str, str], object]) -> object:
    """A server default validated like the label of the same name; `none` leaves nginx's default."""
    if raw.strip().lower() == "none":
        return None
    try:
        return parse("(defaults)", PREFIX + name, raw.strip())
    except L.LabelError as error:
        raise SettingsError(f"{PREFIX}{name}={raw!r} is invalid; allowed: {error.allowed} or none") from None


def _count(name: str, raw: str, low: int, high: int) -> int:
    if raw.strip().isdigit() and raw.strip().isascii() and low <= int(raw) <= high:
        return int(raw)
    raise SettingsError(f"{PREFIX}{name}={raw!r} is not a whole number from {low} to {high}")


def _listen(name: str, raw: str) -> str:
    """A port, or an address and port, as nginx's `listen` takes them: `8081`,
    `127.0.0.1:8081`, `*:8081`, `[::1]:8081`. Nothing else (no parameters, no
    names): the value is written into nginx's configuration as it is."""
    value = raw.strip()
    host, _, port = value.rpartition(":")
    ok = port.isascii() and port.isdigit() and not port.startswith("0") and 0 < int(port) < 65536
    if ok and host not in ("", "*"):
        try:
            if host.startswith("[") and host.endswith("]"):
                ok = ipaddress.ip_address(host[1:-1]).version == 6
            else:
                ok = ipaddress.ip_address(host).version == 4
        except ValueError:
            ok = False
    if ok and value.rpartition(":")[2] in (EMPTY_SERVER.rpartition(":")[2], STATUS_STUB.rpartition(":")[2]):
        ok = False
    if not ok:
        raise SettingsError(
            f"{PREFIX}{name}={raw!r} is not a port or address:port as nginx's listen takes them "
            "(8081, 127.0.0.1:8081, [::1]:8081; not 29503 or 29504, which the image uses); "
            "keep it on an internal address"
        )
    return value


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in raw.split(":") if p)


_PARSERS: dict[str, Callable[[str, str], object]] = {
    "conf_dir": lambda _n, raw: Path(raw),
    "builtin_templates": lambda _n, raw: Path(raw),
    "user_templates": lambda _n, raw: Path(raw),
    "run_dir": lambda _n, raw: Path(raw),
    "watch_dirs": lambda _n, raw: _paths(raw),
    "container": lambda _n, raw: raw.strip(),
    "project": lambda _n, raw: raw.strip(),
    "scope": lambda n, raw: _choice(n, raw, ("project", "all")),
    "max_fails": lambda n, raw: _label_value(n, raw, lambda c, k, v: L.parse_int(c, k, v, 0, 1000)),
    "fail_timeout": lambda n, raw: _label_value(n, raw, L.parse_seconds),
    "debounce_min": _seconds,
    "debounce_max": _seconds,
    "reload_debounce_min": _seconds,
    "reload_debounce_max": _seconds,
    "reload_burst_min": _seconds,
    "reload_burst_max": _seconds,
    "reload_burst_window": _seconds,
    "probe_ports": lambda n, raw: _label_value(n, raw, L.parse_bool),
    "retire_early": lambda n, raw: _label_value(n, raw, L.parse_bool),
    "max_old_generations": lambda n, raw: _count(n, raw, 0, 1000),
    "burst_starts": lambda n, raw: _count(n, raw, 1, 1000),
    "burst_quiet": _seconds,
    "burst_max": _seconds,
    "resync_interval": _seconds,
    "nginx_pid_file": lambda _n, raw: Path(raw),
    "nginx_args_file": lambda _n, raw: Path(raw),
    "log_level": lambda n, raw: _choice(n, raw, LOG_LEVELS),
    "status_listen": _listen,
}


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `DYNAMIC_NGINX_<FIELD>` variables; unset ones keep defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, parse in _PARSERS.items():
        name = field.upper()
        raw = environ.get(PREFIX + name)
        if raw is not None and raw != "":
            values[field] = parse(name, raw)
    settings = Settings(**values)
    for stem in ("debounce", "reload_debounce", "reload_burst"):
        low, high = f"{stem}_min", f"{stem}_max"
        if getattr(settings, low) > getattr(settings, high):
            raise SettingsError(f"{PREFIX}{low.upper()} must not exceed {PREFIX}{high.upper()}")
    return settings
