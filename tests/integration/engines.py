"""Docker engines and sockets the fault tests can break: a nested engine and a socket proxy.

Never the host's own daemon: a fault that needs a daemon to restart uses a
Docker engine run inside a container (REFERENCE.md, "Nested engines"), and
one that needs Docker to go away uses a socket proxy the test stops and starts.
Both are always removed afterwards, and publish ports on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from pathlib import Path

from harness import BACKEND_IMAGE, run, wait_for

HERE = Path(__file__).resolve().parent
DIND_IMAGE = "dynamic-nginx-dind:test"


def image_present(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def build_dind() -> None:
    if not image_present(DIND_IMAGE):
        run(["docker", "build", "--network", "host", "-t", DIND_IMAGE, str(HERE / "dind")], timeout=900)


# The proxy reaches Docker through the socket proxy's FOLDER, as docs/operations.md recommends.
BEHIND_SOCKET_PROXY = """
version: "3.8"
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    environment:
      DOCKER_HOST: unix:///var/run/host-docker/docker.sock
    volumes:
      - SOCKET_FOLDER:/var/run/host-docker:ro
      - CONF
  app:
    image: {backend}
"""
CONF_FOLDER = "./conf.d:/etc/nginx/conf.d"  # a bind-mounted folder owned by another user (root, here)


class Engine:
    """A Docker engine in a container: `docker(...)` runs the CLI inside it,
    `restart_daemon()` restarts its dockerd with the container (and, with
    live_restore, its containers) left running."""

    def __init__(
        self,
        min_api: str | None = None,
        live_restore: bool = False,
        ports: dict[int, int] | None = None,
        network: str | None = None,
    ):
        """network: a Docker network (on the host's engine) of the caller's to join, which
        `remove` leaves in place; without it, the engine creates and removes one of its own."""
        self.name = "dnt-engine-" + uuid.uuid4().hex[:8]
        self.network = network or self.name
        self.owns_network = network is None
        self.min_api = min_api
        self.live_restore = live_restore
        self.ports = ports or {}  # host port (on 127.0.0.1) -> port of the engine's container

    def start(self, timeout: float = 60) -> Engine:
        build_dind()
        if self.owns_network:
            run(["docker", "network", "create", self.network])
        args = [
            "docker",
            "run",
            "-d",
            "--name",
            self.name,
            "--network",
            self.network,
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "-e",
            "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--cgroupns",
            "host",
            "--tmpfs",
            "/var/lib/docker:exec",
            "-e",
            f"ENGINE_NAME={self.name}",
        ]
        if self.min_api:
            args += ["-e", f"DOCKER_MIN_API_VERSION={self.min_api}"]
        for host_port, port in self.ports.items():
            args += ["-p", f"127.0.0.1:{host_port}:{port}"]
        run([*args, DIND_IMAGE])
        self.wait_ready(timeout)
        self.set_live_restore(self.live_restore)
        return self

    def set_live_restore(self, on: bool) -> None:
        """Switch live-restore (a setting dockerd reloads on HUP): with it, containers outlive
        a daemon restart; without it, they stop with the daemon."""
        config = '{"live-restore": %s}' % ("true" if on else "false")
        run(
            [
                "docker",
                "exec",
                self.name,
                "sh",
                "-c",
                f"mkdir -p /etc/docker && echo '{config}' > /etc/docker/daemon.json && kill -HUP $(cat /var/run/docker.pid)",
            ]
        )
        wanted = "true" if on else "false"
        wait_for(
            lambda: self.docker("info", "--format", "{{.LiveRestoreEnabled}}", check=False).stdout.strip() == wanted,
            20,
            f"live-restore {wanted} in {self.name}",
            interval=0.2,
        )
        self.live_restore = on

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(
            lambda: self.docker("info", check=False).returncode == 0,
            timeout,
            f"the nested engine {self.name} to answer",
            interval=0.2,
        )

    def docker(self, *args: str, check: bool = True, timeout: float = 300):  # -> CompletedProcess[str]
        return run(["docker", "exec", self.name, "docker", *args], check=check, timeout=timeout)

    def load(self, *images: str) -> None:
        """Copy images from the host's engine (there is no registry)."""
        for image in images:
            saved = f"docker save {image} | docker exec -i {self.name} docker load -q"
            run(["sh", "-c", saved], timeout=600)

    def write(self, path: str, text: str) -> None:
        """Write a file inside the engine's container (its own file system, where its docker CLI reads)."""
        subprocess.run(
            ["docker", "exec", "-i", self.name, "sh", "-c", f'mkdir -p "$(dirname {path})" && cat > {path}'],
            input=text,
            text=True,
            capture_output=True,
            timeout=60,
            check=True,
        )

    def logs(self) -> str:
        result = run(["docker", "logs", self.name], check=False)
        return result.stdout + result.stderr

    def restart_daemon(self, timeout: float = 60) -> float:
        """Stop dockerd and let the container's loop start it again; seconds until it answers."""
        started = time.monotonic()
        old = run(["docker", "exec", self.name, "cat", "/var/run/docker.pid"]).stdout.strip()
        run(["docker", "exec", self.name, "kill", "-TERM", old])

        def new_daemon() -> bool:
            pid = run(["docker", "exec", self.name, "cat", "/var/run/docker.pid"], check=False).stdout.strip()
            return bool(pid) and pid != old and self.docker("info", check=False).returncode == 0

        wait_for(new_daemon, timeout, f"dockerd in {self.name} to come back", interval=0.2)
        return time.monotonic() - started

    def remove(self) -> None:
        run(["docker", "rm", "-f", "-v", self.name], check=False, timeout=120)
        if self.owns_network:
            run(["docker", "network", "rm", self.network], check=False)


class SocketProxy:
    """tests/integration/sockproxy.py in a container of the backend image,
    serving `folder/docker.sock` (a host folder: mount the FOLDER into the proxy
    under test, as the README says) and forwarding to the host's engine."""

    def __init__(self, folder: Path, allow: tuple[str, ...] = (), mode: str = "666"):
        """allow: regexes over `METHOD PATH?QUERY` (everything when empty), others get a 403;
        mode: the socket's permissions."""
        self.folder = folder
        self.allow = allow
        self.mode = mode
        self.name = "dnt-sockproxy-" + uuid.uuid4().hex[:8]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sockproxy.py").write_text((HERE / "sockproxy.py").read_text())
        self.created = False

    @property
    def socket(self) -> Path:
        return self.folder / "docker.sock"

    def start(self, timeout: float = 20) -> float:
        """Start (or start again) and wait until a ping passes through; seconds taken."""
        began = time.monotonic()
        if not self.created:
            run(
                [
                    "docker",
                    "run",
                    "-d",
                    "--name",
                    self.name,
                    "--network",
                    "none",
                    "-v",
                    f"{self.folder}:/sockproxy",
                    "-v",
                    "/var/run/docker.sock:/var/run/docker.sock",
                    BACKEND_IMAGE,
                    "python3",
                    "/sockproxy/sockproxy.py",
                    "/sockproxy/docker.sock",
                    "--mode",
                    self.mode,
                    *(f"--allow={pattern}" for pattern in self.allow),
                ]
            )
            self.created = True
        else:
            run(["docker", "start", self.name])
        wait_for(self.answers, timeout, "the socket proxy to pass a ping", interval=0.02)
        return time.monotonic() - began

    def answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return sock.recv(64).split(b" ")[1:2] == [b"200"]
        except OSError:
            return False

    def stop(self) -> None:
        run(["docker", "stop", "-t", "2", self.name])

    def freeze(self) -> None:
        """A hung socket proxy: connections stay open (new ones too, in the backlog), nothing answers."""
        run(["docker", "pause", self.name])

    def thaw(self) -> None:
        run(["docker", "unpause", self.name])

    def logs(self) -> str:
        result = run(["docker", "logs", self.name], check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        if self.created:
            run(["docker", "rm", "-f", self.name], check=False)
