"""The status server: `GET /`, `/status.json` and `/metrics` on a Unix socket in the run dir.

nginx serves these on DYNAMIC_NGINX_STATUS_LISTEN and passes them here
(the built-in template writes that server block). Each request reads the two
parts the watcher and the reloader wrote (status) and, for /metrics, asks
nginx's stub_status on loopback; nothing is computed between requests, and
nothing here is on a proxied request's path.

It binds its socket as root (the run dir is root's), lets nginx's workers
connect, then runs as the watcher's unprivileged user.
"""

from __future__ import annotations

import http.client
import http.server
import logging
import os
import pwd
import socketserver
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

from . import metrics, rundir, status
from .settings import Settings

log = logging.getLogger("status")
UNPRIVILEGED_USER = "dynamic-nginx"
STUB_TIMEOUT = 1.0
# serve_forever's default wakes the process twice a second only to see whether shutdown()
# was called; nothing here calls it (supervisord's TERM ends the process), so between
# requests the server sleeps in the kernel and costs nothing.
IDLE_POLL_SECONDS = 3600.0


def _when(value: object) -> str:
    """A Unix time as UTC text for the page; "never" for none."""
    if not isinstance(value, (int, float)) or not value:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def page_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        autoescape=True,  # container names, labels and nginx's errors are text, never markup
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def page(data: Mapping[str, Any], env: jinja2.Environment | None = None) -> str:
    """The HTML page for a composed status.json."""
    return (env or page_environment()).get_template("status_page.html.j2").render(status=data)


def fetch_stub(address: str, timeout: float = STUB_TIMEOUT) -> metrics.Stub | None:
    """nginx's stub_status figures; None when nginx does not answer (nginx_up 0)."""
    host, _, port = address.rpartition(":")
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", "/stub_status")
            response = conn.getresponse()
            body = response.read(4096).decode("ascii", "replace")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        return None
    return metrics.parse_stub(body) if response.status == 200 else None


class Sources:
    """Where a request's answer comes from; tests point it at other files and a fake stub."""

    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        stub: Callable[[], metrics.Stub | None] | None = None,
    ):
        self.watcher = settings.run_dir / rundir.WATCHER_STATUS
        self.reloads = settings.run_dir / rundir.RELOAD_STATUS
        self.environ = dict(os.environ if environ is None else environ)
        self.stub = stub or (lambda: fetch_stub(settings.status_stub))
        self.env = page_environment()

    def status(self) -> dict[str, Any]:
        return status.compose(status.load(self.watcher), status.load(self.reloads), self.environ, time.time())

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a GET of path."""
        path = path.split("?", 1)[0]
        if path == "/status.json":
            return 200, "application/json", status.encode(self.status())
        if path == "/metrics":
            return 200, metrics.CONTENT_TYPE, metrics.exposition(self.status(), self.stub()).encode()
        if path == "/":
            return 200, "text/html; charset=utf-8", page(self.status(), self.env).encode()
        return 404, "text/plain; charset=utf-8", b"not found: try /, /status.json or /metrics\n"


def handler(sources: Sources) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "dynamic-nginx-status"

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            try:
                code, kind, data = sources.answer(self.path)
            except Exception as error:  # a bug must cost one answer, not the server
                log.error("answering %s failed: %s", self.path, error)
                code, kind, data = 500, "text/plain; charset=utf-8", b"status server error; see the proxy's log\n"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # nginx logs the requests (or not: its access_log for this server is off)

        def address_string(self) -> str:
            return "nginx"  # a Unix socket has no client address

    return Handler


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def bind(path: Path, sources: Sources) -> Server:
    """Bind the socket (replacing a stale one) so that nginx's workers may connect."""
    path.unlink(missing_ok=True)
    server = Server(str(path), handler(sources))
    os.chmod(path, 0o666)  # nginx's workers run as user nginx
    return server


def drop_root() -> None:
    """Run as the unprivileged user from now on: this process only reads and answers."""
    if os.getuid() != 0:
        return
    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def serve(settings: Settings) -> int:
    """Serve until stopped; 0 at once when the listener is off."""
    if not settings.status_listen:
        return 0
    server = bind(settings.status_socket, Sources(settings))
    drop_root()
    log.info("status page, /status.json and /metrics on %s", settings.status_listen)
    server.serve_forever(poll_interval=IDLE_POLL_SECONDS)
    return 0
