"""Shared helpers for the unit tests: builders for model values, paths, and the thread check.

Builders take keywords for what a test cares about and fill in the rest, so a
table row reads like the situation it describes:
`container("shop-web-2", number=2, exposed=(8000,))`.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest
from dynamic_nginx import labels as L
from dynamic_nginx import rundir
from dynamic_nginx.model import Container, Model, Proxy
from dynamic_nginx.nginx import children
from dynamic_nginx.settings import Settings

PROJECT = "shop"
NETWORK = "shop_default"
PROXY_ID = "f" * 64

_INSTALLED_TEMPLATES = Path("/usr/share/dynamic-nginx/templates")
# In the image the templates are installed; on a developer's host they are in the work tree.
BUILTIN_TEMPLATES = (
    _INSTALLED_TEMPLATES
    if _INSTALLED_TEMPLATES.is_dir()
    else (Path(__file__).parent / ".." / ".." / "templates").resolve()
)
BUILTIN_NAME = "dynamic-nginx-upstreams.conf"

NGINX = shutil.which("nginx")
needs_nginx = pytest.mark.skipif(
    NGINX is None,
    reason="no nginx binary on this host; these tests always run in the image's test stage",
)


def container_id(name: str) -> str:
    """A stable 64-hex id derived from the name, like Docker's ids."""
    return hashlib.sha256(name.encode()).hexdigest()


def container(
    name: str = "shop-web-1",
    *,
    service: str | None = "web",
    project: str | None = PROJECT,
    number: int | str | None = None,
    oneoff: str | None = "False",
    ip: str = "172.18.0.2",
    networks: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    exposed: Iterable[int] = (),
    state: str = "running",
    health: str | None = None,
    stop_signal: str = "",
    created: str = "",
    id: str | None = None,
) -> Container:
    """A compose container of project `shop` on `shop_default`; None leaves a compose label out."""
    all_labels = {}
    for key, value in (
        (L.COMPOSE_PROJECT, project),
        (L.COMPOSE_SERVICE, service),
        (L.COMPOSE_NUMBER, number),
        (L.COMPOSE_ONEOFF, oneoff),
    ):
        if value is not None:
            all_labels[key] = str(value)
    all_labels.update(labels or {})
    return Container(
        id=id or container_id(name),
        name=name,
        labels=all_labels,
        networks={NETWORK: ip} if networks is None else dict(networks),
        exposed_ports=tuple(exposed),
        state=state,
        health=health,
        stop_signal=stop_signal,
        created=created,
    )


def proxy(
    *,
    project: str = PROJECT,
    networks: Iterable[str] = (NETWORK,),
    id: str = PROXY_ID,
    name: str = "shop-proxy-1",
) -> Proxy:
    """The proxy's own container: project `shop` on `shop_default` unless told otherwise."""
    return Proxy(id=id, name=name, project=project, networks=tuple(networks))


def members(model: Model) -> dict[str, list[str]]:
    """Upstream name -> container names of its servers, in order: what most model tests compare."""
    return {u.name: [s.container.name for s in u.servers] for u in model.upstreams}


def settings_in(tmp: Path, **overrides: object) -> Settings:
    """Settings whose every path lies under tmp (folders created), so nothing outside it is touched."""
    values: dict[str, object] = {
        "conf_dir": tmp / "conf.d",
        "builtin_templates": BUILTIN_TEMPLATES,
        "user_templates": tmp / "templates",
        "run_dir": tmp / "run",
        "watch_dirs": (tmp / "conf.d",),
        "nginx_pid_file": tmp / "run" / "nginx.pid",
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    for folder in (
        settings.conf_dir,
        settings.user_templates,
        settings.run_dir,
        (settings.run_dir / rundir.WRITTEN).parent,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    return settings


def nginx_command(tmp: Path, conf_dir: Path, server: str = "") -> list[str]:
    """Write a minimal nginx.conf under tmp that includes conf_dir/*.conf; return the command to run it.

    Every path nginx would write (pid, temp folders, logs) points into tmp,
    so `nginx -t` can run as root without touching the system's files.
    """
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / "temp" / name).mkdir(parents=True, exist_ok=True)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"pid {tmp}/nginx.pid;\n"
        "error_log stderr;\n"
        "events {}\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {tmp}/temp/body;\n"
        f"    proxy_temp_path {tmp}/temp/proxy;\n"
        f"    fastcgi_temp_path {tmp}/temp/fastcgi;\n"
        f"    uwsgi_temp_path {tmp}/temp/uwsgi;\n"
        f"    scgi_temp_path {tmp}/temp/scgi;\n"
        f"    include {conf_dir}/*.conf;\n"
        f"{server}"
        "}\n"
    )
    return [NGINX or "nginx", "-p", f"{tmp}/", "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]


def threads_left_behind(before: Iterable[threading.Thread], grace: float = 2.0) -> list[threading.Thread]:
    """Threads started since `before`, daemon or not, that are still alive after `grace` seconds.

    Daemon threads count too: every thread the package starts is one, and a
    run loop a test could not stop would otherwise go unnoticed and act on
    later tests. A thread that is just finishing gets the grace period to end.
    """
    known = set(before)
    deadline = time.monotonic() + grace
    left = []
    for thread in threading.enumerate():
        if thread in known or thread is threading.current_thread():
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    return left


def _pid_written(path: Path) -> bool:
    try:
        return path.read_text().strip().isdigit()
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def nginx_running(command: list[str], tmp_path: Path, stop: signal.Signals = signal.SIGQUIT) -> Iterator[None]:
    """Run nginx (logging to tmp_path/nginx.log) until its workers and pid file exist; stop it with `stop` after."""
    with (tmp_path / "nginx.log").open("wb") as log:
        master = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not (children(master.pid) and _pid_written(tmp_path / "nginx.pid")):
            assert master.poll() is None, (tmp_path / "nginx.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start its workers"
            time.sleep(0.02)
        yield
    finally:
        master.send_signal(stop)
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
