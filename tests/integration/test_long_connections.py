"""Long-lived connections outlive membership changes; old worker generations stay bounded.

A long request, an SSE stream and a WebSocket go through the proxy to one
replica of `web`, which is never scaled away, while `web` and `other` are
scaled up and down 20 times: each change reloads nginx, and the connections
stay on the worker generation that accepted them until they end.
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

from harness import PROXY, WEB, Project, get, record, wait_for

COMPOSE = PROXY + WEB + """  other:
    image: {backend}
"""
SITE = """
server {
    listen 80;
    location / {
        proxy_pass http://web.upstream;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_read_timeout 600s;
        proxy_buffering off;
    }
}
map $http_upgrade $connection_upgrade {
    default upgrade;
    '' '';
}
"""
HOLD = 150  # seconds each connection lasts: more than the 2 minutes the events take
EVENTS = 20
EVENT_EVERY = 6.0  # seconds between scale events, so that they span 2 minutes
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
        return {"status": status, "ticks": ticks, "closed": closed, "error": repr(error),
                "seconds": time.monotonic() - started}


def in_thread(results: dict[str, dict[str, object]], name: str, call: Callable[[], dict[str, object]]) -> threading.Thread:
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


def test_a_long_request_an_sse_stream_and_a_websocket_outlive_20_scale_events(project):
    p = project(COMPOSE, {"conf.d/default.conf": SITE})
    p.up(web=1, other=1)
    [held] = p.ids("web")
    p.wait_serving([held])
    reloads_before = p.reloads()
    results, threads = start_all(p, HOLD)
    time.sleep(2)  # all three are through to `held` before membership changes
    started = time.monotonic()
    for event in range(EVENTS):
        # Alternate: web 1 -> 2 and back (its second replica goes, `held` stays), other likewise.
        service = "web" if event % 2 == 0 else "other"
        p.up(**{service: 2 if event % 4 < 2 else 1})
        time.sleep(max(0.0, started + (event + 1) * EVENT_EVERY - time.monotonic()))
    events_took = time.monotonic() - started
    generations_after = old_generations(p)
    for thread in threads:
        thread.join(HOLD + 90)
    reloads = p.reloads() - reloads_before
    logs = p.logs()
    reports = [tuple(map(float, m)) for m in GENERATION.findall(logs)]
    record("long connections: seconds of scale events", round(events_took, 1))
    record("long connections: reloads while held", reloads)
    record("long connections: old generations after the events", generations_after)
    record("long connections: largest report (generations, workers, MiB)", max(reports, default=None))

    assert events_took >= 120 and reloads >= EVENTS, (events_took, reloads)
    assert results["long request"].get("status") == 200, results["long request"]
    assert results["long request"].get("bytes") == HOLD * 1000, results["long request"]
    assert results["sse"].get("status") == 200, results["sse"]
    assert results["sse"].get("ticks") == [f"tick {n}" for n in range(1, HOLD + 1)], results["sse"]
    assert results["websocket"].get("status") == 101, results["websocket"]
    assert results["websocket"].get("ticks") == [f"tick {n}" for n in range(1, HOLD + 1)], results["websocket"]
    assert results["websocket"].get("closed") is True, results["websocket"]
    # The connections kept the first generation alive throughout; reloads without them left nothing behind.
    assert 1 <= generations_after <= 10, generations_after
    assert reports and all(g <= 10 for g, _, _ in reports), reports
    assert get(p.port)[0] == 200


def test_the_oldest_generation_beyond_the_bound_is_ended_with_one_line(project):
    compose = COMPOSE.replace("    volumes:\n", "    environment:\n      DYNAMIC_NGINX_MAX_OLD_GENERATIONS: 1\n"
                                               "    volumes:\n", 1)
    p = project(compose, {"conf.d/default.conf": SITE})
    p.up(web=1, other=1)
    p.wait_serving(p.ids("web"))
    first: dict[str, dict[str, object]] = {}
    second: dict[str, dict[str, object]] = {}
    one = in_thread(first, "long request", lambda: long_request(p.port, 60))
    time.sleep(2)
    p.up(other=2)  # a reload: `first` now holds an old generation
    wait_for(lambda: old_generations(p) >= 1, 15, "the first old generation")
    two = in_thread(second, "long request", lambda: long_request(p.port, 30))
    time.sleep(2)
    p.up(other=1)  # a second reload: two old generations, one more than the bound
    one.join(20)  # the bound ends the oldest within seconds, long before its 60 s
    logs = wait_for(lambda: "ended the oldest worker generation" in p.logs() and p.logs(), 10, "the line")
    ended = [line for line in logs.splitlines() if "ended the oldest worker generation" in line]
    assert first.get("long request", {}).get("status") != 200, first
    assert len(ended) == 1, ended
    record("long connections: the bound's line", ended[0])
    assert "since 2 old generations were live and DYNAMIC_NGINX_MAX_OLD_GENERATIONS=1" in ended[0]
    assert "reloader: WARNING:" in ended[0]
    two.join(45)
    assert second.get("long request", {}).get("status") == 200, second  # the younger one was spared
    assert second["long request"]["bytes"] == 30 * 1000
