"""Settings: one frozen object, built once from `DYNAMIC_NGINX_*` variables.

Every variable the package reads is in VARIABLES with its parser, so the
environment reference (docs/environment.md) can be checked against one place.
Timings derive from one pair, DYNAMIC_NGINX_WAIT=min:max (see Wait); the
variables it replaced are in REMOVED, which says what to set instead.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import labels as L
from . import rundir

PREFIX = "DYNAMIC_NGINX_"
LOG_LEVELS = ("debug", "info", "warning", "error")
# The built-in 503 server (see Settings.empty_server).
EMPTY_SERVER = "127.0.0.1:29503"
# nginx's stub_status, for the status server's /metrics: loopback only, next to the 503 server.
STATUS_STUB = "127.0.0.1:29504"
MAX_WAIT = 60.0  # seconds; a longer wait would only hold changes back


class SettingsError(ValueError):
    """A variable has a value we cannot use; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class Wait:
    """DYNAMIC_NGINX_WAIT: how long changes are collected before they are acted on.

    The watcher renders once events have been quiet for `min` seconds, and at
    most `max` seconds after the first. Everything else scales from the pair,
    so one knob moves the whole pipeline: the reloader waits 2.5 times as long
    for quiet (editors write a file in several steps) and twice as long at
    most; a burst of starts (`--scale web=20`) is collected until quiet for
    2 * max, at most 12 * max.
    """

    min: float = 0.02
    max: float = 0.5

    @property
    def reload_min(self) -> float:
        return self.min * 2.5

    @property
    def reload_max(self) -> float:
        return self.max * 2

    @property
    def burst_quiet(self) -> float:
        return self.max * 2

    @property
    def burst_max(self) -> float:
        return self.max * 12


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the watcher and reloader need to know, with the defaults of the image.

    The paths without a variable (templates, watched folders, nginx's pid
    file) are the image's layout; tests point them elsewhere.
    """

    conf_dir: Path = Path("/etc/nginx/conf.d")
    builtin_templates: Path = Path("/usr/share/dynamic-nginx/templates")
    user_templates: Path = Path("/etc/nginx/templates")
    run_dir: Path = rundir.DEFAULT
    watch_dirs: tuple[Path, ...] = (Path("/etc/nginx"),)
    container: str = ""
    project: str = ""
    scope: str = "project"
    mode: str = "auto"  # compose, swarm, or auto: swarm when the proxy runs as a Swarm task
    max_fails: int | None = 1
    fail_timeout: str | None = "1s"
    wait: Wait = Wait()
    probe_ports: bool = True
    max_old_generations: int = 10
    resync_interval: float = 30.0
    nginx_pid_file: Path = Path("/run/nginx.pid")
    log_level: str = "info"
    status_listen: str = ""  # off; else a validated nginx `listen` address (see _listen)

    @property
    def nginx_args_file(self) -> Path:
        """The container's nginx command line as bin/start wrote it, so nginx -t sees the user's -c and -g."""
        return self.run_dir / rundir.NGINX_ARGS

    # The watcher's batching and the reloader's debounce, from `wait`.
    @property
    def debounce_min(self) -> float:
        return self.wait.min

    @property
    def debounce_max(self) -> float:
        return self.wait.max

    @property
    def reload_debounce_min(self) -> float:
        return self.wait.reload_min

    @property
    def reload_debounce_max(self) -> float:
        return self.wait.reload_max

    @property
    def burst_quiet(self) -> float:
        return self.wait.burst_quiet

    @property
    def burst_max(self) -> float:
        return self.wait.burst_max

    @property
    def burst_starts(self) -> int:
        """This many starts within batching.BURST_WINDOW make a burst; a single start is never held."""
        return 3

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
        return self.run_dir / rundir.STATUS_SOCK

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
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not a number of seconds between 0 and 3600")
    return value


_WAIT_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s)?")
_WAIT_FIX = f"use min:max in seconds, each from 0 to {MAX_WAIT:.0f}, such as 0.02:0.5 or 20ms:500ms"


def _wait(name: str, raw: str) -> Wait:
    """`min:max` (or `min` alone: max is then 4 * min); each a number of seconds, or with ms or s."""
    parts = raw.strip().split(":")
    values: list[float] = []
    for part in parts if len(parts) <= 2 else ():
        match = _WAIT_PART.fullmatch(part.strip())
        if match is None:
            break
        value = float(match[1]) / (1000 if match[2] == "ms" else 1)
        if value > MAX_WAIT:
            break
        values.append(value)
    if not values or len(values) != len(parts):
        raise SettingsError(f"{PREFIX}{name}={raw!r} is not a wait: {_WAIT_FIX}")
    low, high = (values[0], min(values[0] * 4, MAX_WAIT)) if len(values) == 1 else values
    if low > high:
        raise SettingsError(f"{PREFIX}{name}={raw!r}: min must not exceed max; {_WAIT_FIX}")
    return Wait(low, high)


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


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in L.TRUE or value in L.FALSE:
        return value in L.TRUE
    raise SettingsError(f"{PREFIX}{name}={raw!r} must be true or false")


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


# Variable (without the prefix) -> (Settings field, parser). Every knob the package reads.
VARIABLES: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "CONTAINER": ("container", lambda _n, raw: raw.strip()),
    "PROJECT": ("project", lambda _n, raw: raw.strip()),
    "SCOPE": ("scope", lambda n, raw: _choice(n, raw, ("project", "all"))),
    "MODE": ("mode", lambda n, raw: _choice(n, raw, ("auto", "compose", "swarm"))),
    "MAX_FAILS": ("max_fails", lambda n, raw: _label_value(n, raw, lambda c, k, v: L.parse_int(c, k, v, 0, 1000))),
    "FAIL_TIMEOUT": ("fail_timeout", lambda n, raw: _label_value(n, raw, L.parse_seconds)),
    "MAX_OLD_GENERATIONS": ("max_old_generations", lambda n, raw: _count(n, raw, 0, 1000)),
    "WAIT": ("wait", _wait),
    "RESYNC_INTERVAL": ("resync_interval", _seconds),
    "PROBE_PORTS": ("probe_ports", _bool),
    "LOG_LEVEL": ("log_level", lambda n, raw: _choice(n, raw, LOG_LEVELS)),
    "CONF_DIR": ("conf_dir", lambda _n, raw: Path(raw)),
    "RUN_DIR": ("run_dir", lambda _n, raw: Path(raw)),
    "STATUS_LISTEN": ("status_listen", _listen),
}

_WAIT_SCALES = f"{PREFIX}WAIT=min:max, from which every wait derives (docs/environment.md)"
_TEMPLATES = "mount your templates at /etc/nginx/templates"
# Variables that older versions read -> (what to do instead, fatal). A removed
# timing knob only warns: the defaults serve the same upstreams, so an upgrade
# must not take a working proxy down for it. A removed path is fatal:
# ignoring it would serve a different configuration than the one asked for.
REMOVED: dict[str, tuple[str, bool]] = {
    "DEBOUNCE_MIN": (f"set {_WAIT_SCALES}; this was its min", False),
    "DEBOUNCE_MAX": (f"set {_WAIT_SCALES}; this was its max", False),
    "RELOAD_DEBOUNCE_MIN": (f"set {_WAIT_SCALES}; the reloader waits 2.5 * min", False),
    "RELOAD_DEBOUNCE_MAX": (f"set {_WAIT_SCALES}; the reloader waits at most 2 * max", False),
    "RELOAD_BURST_MIN": (f"set {_WAIT_SCALES}; the reloader no longer holds bursts (it was off by default)", False),
    "RELOAD_BURST_MAX": (f"set {_WAIT_SCALES}; the reloader no longer holds bursts (it was off by default)", False),
    "RELOAD_BURST_WINDOW": (f"set {_WAIT_SCALES}; the reloader no longer holds bursts (it was off by default)", False),
    "BURST_STARTS": (f"set {_WAIT_SCALES}; 3 starts within 2 s make a burst", False),
    "BURST_QUIET": (f"set {_WAIT_SCALES}; a burst is held until quiet for 2 * max", False),
    "BURST_MAX": (f"set {_WAIT_SCALES}; a burst is held at most 12 * max", False),
    "RETIRE_EARLY": ("nothing: old workers are always told to stop once the new ones run", False),
    "USER_TEMPLATES": (_TEMPLATES, True),
    "BUILTIN_TEMPLATES": (f"{_TEMPLATES}; one named like a built-in template replaces it", True),
    "WATCH_DIRS": (
        "keep the files nginx reads under /etc/nginx (watched), or send the container SIGHUP after a change",
        True,
    ),
    "NGINX_ARGS_FILE": (
        f"set {PREFIX}RUN_DIR if you must move the run dir; the file is {rundir.NGINX_ARGS} in it",
        True,
    ),
    "NGINX_PID_FILE": ("nothing: nginx's pid file is /run/nginx.pid, as the image's nginx.conf says", True),
}


def removed(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line for each removed variable that is set and not fatal: the caller logs them as warnings."""
    environ = os.environ if environ is None else environ
    return [
        _removed_line(name, environ) for name, (_, fatal) in REMOVED.items() if not fatal and environ.get(PREFIX + name)
    ]


def _removed_line(name: str, environ: Mapping[str, str]) -> str:
    fix, fatal = REMOVED[name]
    effect = "" if fatal else ", and is ignored"
    return f"{PREFIX}{name}={environ[PREFIX + name]!r} is no longer read{effect}: {fix}"


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from `DYNAMIC_NGINX_<NAME>` variables; unset or empty ones keep defaults.

    Raises SettingsError, naming the variable and the fix, for a value that
    cannot be used and for a removed variable that may not be ignored.
    """
    environ = os.environ if environ is None else environ
    for name, (_, fatal) in REMOVED.items():
        if fatal and environ.get(PREFIX + name):
            raise SettingsError(_removed_line(name, environ))
    values: dict[str, Any] = {}
    for name, (field, parse) in VARIABLES.items():
        raw = environ.get(PREFIX + name)
        if raw is not None and raw != "":
            values[field] = parse(name, raw)
    return Settings(**values)
