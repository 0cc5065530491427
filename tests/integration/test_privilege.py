"""Least privilege: the watcher runs as an unprivileged user, the image makes only read calls
to Docker, a refused call is named, and Docker over TCP (plain or TLS) works.

The recording socket proxy (engines.SocketProxy, tests/integration/sockproxy.py) logs every
request as `METHOD PATH -> forwarded|403` and answers 403 to anything its allow-list lacks.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import BEHIND_SOCKET_PROXY, CONF_FOLDER, SocketProxy
from harness import STATIC_SITE, Project, get, run, wait_for

SITE = STATIC_SITE

# The calls the image may make: GET/HEAD, unversioned or /v1.xx/-prefixed, with any query.
V = r"(/v1\.[0-9]+)?"
ALLOWED = tuple(
    rf"(GET|HEAD) {V}{path}(\?.*)?"
    for path in (r"/_ping", r"/version", r"/events", r"/containers/json", r"/containers/[0-9a-zA-Z_.-]+/json")
)
LOGGED = re.compile(r"^(\S+) (\S+) -> (forwarded|403|502.*)$")

CONF_FILE = "./conf.d/default.conf:/etc/nginx/conf.d/default.conf:ro"  # the image's own conf.d folder


@pytest.fixture
def socket_proxy(tmp_path: Path) -> Iterator[SocketProxy]:
    made: list[SocketProxy] = []

    def make(**options: object) -> SocketProxy:
        made.append(SocketProxy(tmp_path / f"docker-socket{len(made)}", **options))  # type: ignore[arg-type]
        return made[-1]

    yield make  # type: ignore[misc]
    for proxy in made:
        proxy.remove()


def behind(project, proxy: SocketProxy, conf: str = CONF_FOLDER) -> Project:
    compose = BEHIND_SOCKET_PROXY.replace("SOCKET_FOLDER", str(proxy.folder)).replace("CONF", conf)
    return project(compose, {"conf.d/default.conf": SITE})


def status_of(p: Project, program: str) -> dict[str, str]:
    """/proc/<pid>/status of one supervisord program, as a dict."""
    pid = p.exec("supervisorctl", "pid", program).stdout.strip()
    assert pid.isdigit(), f"{program} is not running: {pid}"
    text = p.exec("cat", f"/proc/{pid}/status").stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def calls(proxy: SocketProxy) -> list[tuple[str, str, str]]:
    """(method, path, outcome) of every request the socket proxy saw."""
    found = []
    for line in proxy.logs().splitlines():
        match = LOGGED.match(line)
        if match:
            found.append((match.group(1), match.group(2), match.group(3)))
    return found


def endpoint(path: str) -> str:
    path = re.sub(r"^/v1\.[0-9]+", "", path.split("?")[0])
    return re.sub(r"^/containers/[^/]+/json$", "/containers/{id}/json", path)


def test_behind_an_allow_list_of_read_calls_scale_and_kill_are_followed_and_nothing_else_is_called(
    project, socket_proxy
):
    proxy = socket_proxy(allow=ALLOWED)
    proxy.start()
    p = behind(project, proxy)
    p.up(app=2)
    p.wait_serving(p.ids("app"))
    p.up(app=4)
    p.wait_serving(p.ids("app"))
    victim = p.ids("app")[0]
    run(["docker", "kill", victim])
    left = [i for i in p.ids("app") if i != victim]
    assert len(left) == 3
    p.wait_serving(left)

    seen = calls(proxy)
    assert seen, proxy.logs()[-2000:]
    refused = [c for c in seen if c[2] != "forwarded"]
    assert refused == [], f"calls the allow-list refused: {refused}"
    assert all(any(re.fullmatch(a, f"{m} {path}") for a in ALLOWED) for m, path, _ in seen)
    used = {(m, endpoint(path)) for m, path, _ in seen}
    # What the image needs, all seen: the unversioned ping, the event stream, the list and inspects.
    assert {
        ("GET", "/_ping"),
        ("GET", "/events"),
        ("GET", "/containers/json"),
        ("GET", "/containers/{id}/json"),
    } <= used, used
    logs = p.logs()
    assert "refused" not in logs and "Traceback" not in logs, logs[-3000:]

    # The watcher: uid/gid dynamic-nginx (102), no group but its own, and only CAP_DAC_OVERRIDE
    # (bit 1): this conf.d is a bind mount that the user cannot write.
    watcher = status_of(p, "watcher")
    assert watcher["Uid"].split() == ["102"] * 4, watcher["Uid"]
    assert watcher["Gid"].split() == ["102"] * 4, watcher["Gid"]
    assert int(watcher["CapEff"], 16) == 1 << 1, watcher["CapEff"]
    assert int(watcher["CapBnd"], 16) == 1 << 1, watcher["CapBnd"]
    assert watcher["NoNewPrivs"] == "1"
    # Only what must be root is: nginx's master and the reloader, which signals it.
    assert status_of(p, "reloader")["Uid"].split()[0] == "0"
    assert status_of(p, "nginx")["Uid"].split()[0] == "0"


def test_with_the_images_own_conf_d_the_watcher_reaches_the_socket_through_its_group_with_no_capability(
    project, socket_proxy
):
    """The socket as dockerd makes it (0660, group docker), not world-writable as the proxy's."""
    proxy = socket_proxy(mode="660")
    proxy.start()
    gid = os.stat(proxy.socket).st_gid
    p = behind(project, proxy, CONF_FILE)
    p.up(app=2)
    p.wait_serving(p.ids("app"))
    p.up(app=3)
    p.wait_serving(p.ids("app"))
    watcher = status_of(p, "watcher")
    assert watcher["Uid"].split() == ["102"] * 4, watcher["Uid"]
    assert watcher["Groups"].split() == [str(gid)], watcher["Groups"]
    assert int(watcher["CapEff"], 16) == 0 and int(watcher["CapPrm"], 16) == 0, watcher["CapEff"]
    files = p.exec("ls", "-ln", "/etc/nginx/conf.d").stdout
    assert "dynamic-nginx-upstreams.conf" in files, files


def test_a_socket_its_group_cannot_use_is_one_line_with_the_fix_and_nginx_serves(project, socket_proxy):
    proxy = socket_proxy(mode="600")
    proxy.start()
    p = behind(project, proxy, CONF_FILE)
    p.up(app=1)
    wait_for(lambda: get(p.port, "/static")[0] == 200, 30, "nginx to serve /static")
    wait_for(lambda: "watcher: ERROR: Docker refused" in p.logs(), 30, "the watcher's refused line")
    logs = p.logs()
    line = [x for x in logs.splitlines() if "cannot be used through its group" in x]
    assert len(line) == 1, logs[-3000:]
    assert "/var/run/host-docker/docker.sock" in line[0] and "mode 600" in line[0]
    assert "chmod 660" in line[0] and "DOCKER_HOST" in line[0]
    # The start-up render runs as the same user, so it could not list the replica either:
    # nginx serves, and the upstream answers 503 until Docker can be reached.
    assert get(p.port)[0] == 503
    assert [x for x in logs.splitlines() if "first render:" in x and "Permission denied" in x], logs[-3000:]
    refused = [x for x in logs.splitlines() if "watcher: ERROR: Docker refused" in x]
    assert len(refused) == 1 and "Permission denied" in refused[0], refused


def test_a_refused_call_the_image_needs_is_one_line_naming_it(project, socket_proxy):
    proxy = socket_proxy(allow=tuple(a for a in ALLOWED if "/events" not in a))
    proxy.start()
    p = behind(project, proxy)
    p.up(app=1)
    wait_for(lambda: "watcher: ERROR: Docker refused" in p.logs(), 30, "the watcher's refused line")
    time.sleep(3)  # retries: still one line
    lines = [x for x in p.logs().splitlines() if "watcher: ERROR: Docker refused" in x]
    assert len(lines) == 1, lines
    assert "Docker refused GET /events at unix:///var/run/host-docker/docker.sock" in lines[0], lines[0]
    assert "dynamic-nginx needs it; allow GET /events in the socket proxy in front of Docker" in lines[0], lines[0]
    assert ("GET", "/events") in {(m, endpoint(path)) for m, path, outcome in calls(proxy) if outcome == "403"}


def make_certs(folder: Path) -> None:
    """A CA, a server certificate for `docker-api` and a client certificate, with openssl."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key usages and key identifiers are required.
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    )
    leaf = (
        "keyUsage=critical,digitalSignature,keyEncipherment\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    for name, cn, ext in (
        ("server", "docker-api", "subjectAltName=DNS:docker-api\nextendedKeyUsage=serverAuth"),
        ("", "client", "extendedKeyUsage=clientAuth"),
    ):
        prefix = f"{name}-" if name else ""
        (folder / f"{prefix}ext.cnf").write_text(leaf + ext + "\n")
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{prefix}key.pem",
            "-out",
            f"{prefix}req.pem",
            "-subj",
            f"/CN={cn}",
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{prefix}req.pem",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            f"{prefix}cert.pem",
            "-days",
            "2",
            "-extfile",
            f"{prefix}ext.cnf",
        )
    for path in folder.iterdir():
        path.chmod(0o644)  # the watcher (uid 102) reads them; as certificates mounted for it must be


OVER_TCP = """
version: "3.8"
services:
  docker-api:
    image: {backend}
    command: ["python3", "/sockproxy/sockproxy.py", "tcp://0.0.0.0:PORT", "/var/run/docker.sock", TLS]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ./sockproxy:/sockproxy:ro
      - CERTS:/certs:ro
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    depends_on: [docker-api]
    environment:
      DOCKER_HOST: tcp://docker-api:PORT
ENV
    volumes:
      - ./conf.d/default.conf:/etc/nginx/conf.d/default.conf:ro
      - CERTS:/certs:ro
  app:
    image: {backend}
"""


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_docker_over_tcp_and_tls_serves_replicas_and_follows_a_scale(project, tmp_path: Path, tls: bool):
    certs = tmp_path / "certs"
    certs.mkdir()
    if tls:
        make_certs(certs)
    compose = (
        OVER_TCP.replace("PORT", "2376" if tls else "2375")
        .replace("CERTS", str(certs))
        .replace("TLS", '"--tls", "/certs"' if tls else '"--allow", ".*"')
        .replace("ENV\n", '      DOCKER_TLS_VERIFY: "1"\n      DOCKER_CERT_PATH: /certs\n' if tls else "")
    )
    sockproxy = (Path(__file__).parent / "sockproxy.py").read_text()
    p = project(compose, {"conf.d/default.conf": SITE, "sockproxy/sockproxy.py": sockproxy})
    p.up(app=2)
    p.wait_serving(p.ids("app"), timeout=30)
    p.up(app=3)
    p.wait_serving(p.ids("app"), timeout=30)
    logs = p.logs()
    first = [x for x in logs.splitlines() if "first render" in x]
    assert len(first) == 1 and "watcher: INFO: first render" in first[0], first  # it reached Docker
    assert "ERROR" not in "\n".join(x for x in logs.splitlines() if x.startswith("watcher:")), logs[-3000:]
    api = run(["docker", "logs", p.ids("docker-api")[0]]).stdout
    assert ("with TLS" in api) == tls, api[:300]
    assert re.search(r"^GET /v1\.[0-9]+/events\S* -> forwarded$", api, re.M), api[-2000:]
    if tls:
        assert "TLS handshake refused" not in api, api[-2000:]
    watcher = status_of(p, "watcher")
    assert watcher["Uid"].split() == ["102"] * 4 and int(watcher["CapEff"], 16) == 0, watcher
