"""Clients for long-lived connections through the proxy, shared by the integration
test and the benchmark (bench/long_connections.py): a long request, an SSE stream
and a WebSocket against the demo backend's /long, /stream and /ws, and a count of
the proxy's old worker generations.

Each client returns a dict of what it received and never raises for a cut
connection: a cut is a result (status 0 or fewer ticks), to be asserted or reported.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Callable

from harness import Project

# A site that passes everything to `web`, upgrading WebSockets and streaming
# unbuffered, with a read timeout longer than any hold (the backend caps them at
# 600 s): a silent long request must end with the backend's answer, not nginx's 504.
SITE = """
server {
    listen 80;
    location / {
        proxy_pass http://web.upstream;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 900s;
        proxy_buffering off;
    }
}
map $http_upgrade $connection_upgrade {
    default upgrade;
    '' '';
}
"""
GENERATION = re.compile(r"(\d+) old worker generations? still serving connections \((\d+) workers?, ([\d.]+) MiB")


def long_request(port: int, seconds: int) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 60)
    started = time.monotonic()
    try:
        connection.request("GET", f"/long?seconds={seconds}")
        response = connection.getresponse()
        body = response.read()
        return {"status": response.status, "bytes": len(body), "seconds": time.monotonic() - started}
    except (OSError, http.client.HTTPException) as error:
        return {"status": 0, "error": repr(error), "seconds": time.monotonic() - started}
    finally:
        connection.close()


def sse(port: int, seconds: int) -> dict[str, object]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ticks: list[str] = []
    started = time.monotonic()
    try:
        connection.request("GET", f"/stream?seconds={seconds}")
        response = connection.getresponse()
        for _ in range(3 * seconds + 10):  # each event is two lines; bounded however it ends
            line = response.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                ticks.append(line[6:].strip().decode())
        return {"status": response.status, "ticks": ticks, "seconds": time.monotonic() - started}
    except (OSError, http.client.HTTPException) as error:
        return {"status": 0, "ticks": ticks, "error": repr(error), "seconds": time.monotonic() - started}
    finally:
        connection.close()


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def websocket(port: int, seconds: int) -> dict[str, object]:
    """A raw-socket WebSocket client: handshake, then server frames until the close frame."""
    key = base64.b64encode(os.urandom(16)).decode()
    ticks: list[str] = []
    status = 0
    started = time.monotonic()
    closed = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                f"GET /ws?seconds={seconds} HTTP/1.1\r\nHost: proxy\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 4096:
                chunk = sock.recv(1)
                if not chunk:
                    break
                head += chunk
            status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
            for _ in range(seconds + 5):  # bounded: one frame a tick, then the close frame
                opcode, length = recv_exactly(sock, 2)
                payload = recv_exactly(sock, length & 0x7F)
                if opcode & 0x0F == 0x8:
                    closed = True
                    break
                ticks.append(payload.decode())
        return {"status": status, "ticks": ticks, "closed": closed, "seconds": time.monotonic() - started}
    except (OSError, ValueError) as error:
        return {
            "status": status,
            "ticks": ticks,
            "closed": closed,
            "error": repr(error),
            "seconds": time.monotonic() - started,
        }


def in_thread(
    results: dict[str, dict[str, object]], name: str, call: Callable[[], dict[str, object]]
) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.__setitem__(name, call()), name=name, daemon=True)
    thread.start()
    return thread


def old_generations(p: Project) -> int:
    """The old generations alive in the proxy now: its draining workers, grouped by start
    time as the reloader groups them (a generation's workers start within a clock tick)."""
    script = (
        "for s in /proc/[0-9]*/stat; do d=${s%/stat}; "
        "if tr '\\0' ' ' < $d/cmdline 2>/dev/null | grep -q 'worker process is shutting down'; "
        "then cut -d' ' -f22 $s; fi; done"
    )
    starts = sorted(int(t) for t in p.exec("sh", "-c", script).stdout.split())
    return sum(1 for i, t in enumerate(starts) if i == 0 or t - starts[i - 1] > 1)


def start_all(p: Project, seconds: int) -> tuple[dict[str, dict[str, object]], list[threading.Thread]]:
    results: dict[str, dict[str, object]] = {}
    threads = [
        in_thread(results, "long request", lambda: long_request(p.port, seconds)),
        in_thread(results, "sse", lambda: sse(p.port, seconds)),
        in_thread(results, "websocket", lambda: websocket(p.port, seconds)),
    ]
    return results, threads
