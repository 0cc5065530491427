"""SocketApi negotiates the API version with a real HTTP server on a Unix socket that answers like dockerd.

The fake engine has an API version and a floor (Docker 29 refuses anything
below 1.44 with a 400 "too old"), serves `/_ping` unversioned with an
`Api-Version` header, and records every request path.
"""

from __future__ import annotations

import json
import re
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamic_nginx import docker_source as D

OWN = "9e53f462120d64e4d1c36f36085542eea6d365140c34d536bcfc30860a5e19ae"
VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, version: str, floor: str):
        self.version = version
        self.floor = floor
        self.paths: list[str] = []  # every request
        self.answered: list[str] = []  # the versions of the versioned requests answered 200
        super().__init__(path, Handler)


class Handler(socketserver.StreamRequestHandler):
    server: Engine

    def handle(self) -> None:
        request = self.rfile.readline().decode()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        target = request.split(" ")[1]
        self.server.paths.append(target)
        path = target.split("?")[0]
        if path == "/_ping":
            return self.answer(200, "OK", {"Api-Version": self.server.version}, text=True)
        match = VERSIONED.match(path)
        if match:
            asked, path = match.groups()
            if key(asked) < key(self.server.floor):
                return self.answer(
                    400,
                    {
                        "message": f"client version {asked} is too old. Minimum supported API version is "
                        f"{self.server.floor}, please upgrade your client to a newer version"
                    },
                )
            if key(asked) > key(self.server.version):
                return self.answer(
                    400,
                    {
                        "message": f"client version {asked} is too new. Maximum supported API version is "
                        f"{self.server.version}"
                    },
                )
        if path == f"/containers/{OWN}/json":
            return self.answer(200, {"Id": OWN, "Name": "/shop-proxy-1", "Config": {"Labels": {}}})
        if path == "/containers/json":
            return self.answer(200, [])
        return self.answer(404, {"message": f"page not found: {path}"})

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None, text: bool = False) -> None:
        match = VERSIONED.match(self.server.paths[-1])
        if status == 200 and match:
            self.server.answered.append(match.group(1))
        data = (body if text else json.dumps(body)).encode()
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(data)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)


@pytest.fixture
def engine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Engine]:
    version, floor = request.param
    server = Engine(str(tmp_path / "docker.sock"), version, floor)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


ENGINES = [
    pytest.param(("1.41", "1.12"), id="Docker 20.10"),
    pytest.param(("1.45", "1.24"), id="Docker 26"),
    pytest.param(("1.52", "1.44"), id="Docker 29 (floor 1.44)"),
    pytest.param(("1.60", "1.50"), id="a future engine whose floor is above what we know"),
]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_every_engine_answers_the_first_render(engine: Engine) -> None:
    api = D.SocketApi(str(engine.server_address), timeout=2)
    assert api.inspect_container(OWN)["Id"] == OWN
    assert api.containers({"label": "com.docker.compose.project=shop"}) == []
    assert len(engine.answered) == 2
    (used,) = set(engine.answered)
    assert key(engine.floor) <= key(used) <= key(engine.version)
    assert engine.paths.count("/_ping") == 1, "negotiated once, not per request"


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        pytest.param(("1.41", "1.12"), "1.41", id="an older engine: its own version"),
        pytest.param(("1.52", "1.44"), D.NEWEST_API_VERSION, id="a newer engine: the newest we know"),
    ],
    indirect=["engine"],
)
def test_the_older_of_the_engines_and_ours_is_used(engine: Engine, expected: str) -> None:
    api = D.SocketApi(str(engine.server_address), timeout=2)
    assert api.negotiate() == expected


@pytest.mark.parametrize("engine", [pytest.param(("1.52", "1.44"), id="Docker 29")], indirect=True)
def test_the_fake_engine_refuses_a_pinned_old_version_as_docker_29_does(engine: Engine) -> None:
    """The fake is faithful: what the old pinned client did fails against it."""
    api = D.SocketApi(str(engine.server_address), timeout=2)
    api.version = "1.41"
    api.server_version = "1.41"  # no fallback: as the pinned client behaved
    with pytest.raises(D.ApiError, match="client version 1.41 is too old") as caught:
        api.inspect_container(OWN)
    assert caught.value.status_code == 400


@pytest.mark.parametrize("engine", [pytest.param(("1.41", "1.12"), id="Docker 20.10")], indirect=True)
def test_an_error_answer_carries_the_status_and_dockers_message(engine: Engine) -> None:
    api = D.SocketApi(str(engine.server_address), timeout=2)
    with pytest.raises(D.ApiError) as caught:
        api.inspect_container("missing")
    assert D.is_not_found(caught.value)
    assert "page not found" in str(caught.value)


def test_no_socket_fails_at_once_with_the_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        D.SocketApi(str(tmp_path / "nothing.sock"), timeout=2).ping()


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param("1.41", "1.45", "1.41", id="older first"),
        pytest.param("1.52", "1.45", "1.45", id="older second"),
        pytest.param("1.9", "1.10", "1.9", id="compared as numbers, not text"),
        pytest.param("1.45", "1.45", "1.45", id="equal"),
    ],
)
def test_older(a: str, b: str, expected: str) -> None:
    assert D.older(a, b) == expected


def test_first_render_without_docker_writes_503_stubs_for_every_referenced_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Docker unreachable at start: the render still writes a file, so nginx -t passes and
    nginx starts; every upstream the user's config mentions exists, with the 503 server."""
    from dynamic_nginx.__main__ import _render
    from support import BUILTIN_NAME, settings_in

    settings = settings_in(tmp_path)
    (settings.conf_dir / "default.conf").write_text(
        "server { location /static { return 200; } location / { proxy_pass http://app.upstream; } }\n"
    )
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing/docker.sock")
    with caplog.at_level("INFO", logger="watcher"):
        assert _render(settings, start_up=True) == 0
        assert _render(settings) == 1, "outside start-up, a failed render is a failure"
    text = (settings.conf_dir / BUILTIN_NAME).read_text()
    assert "upstream app.upstream {" in text and f"server {settings.empty_server};" in text
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    assert errors[0].startswith(f"first render: Docker unreachable at unix://{tmp_path}/nothing/docker.sock")
    assert errors[0].endswith("answer 503 until Docker answers: app.upstream")
