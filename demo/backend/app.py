"""A demo backend: answers every request with its hostname (the container id).

It behaves like a careful real service on shutdown: on SIGTERM it stops
accepting new connections at once, finishes the requests in flight, then
exits. `?sleep=SECONDS` delays the answer (up to 10 s) to keep requests in flight.
Long-lived connections, for tests that hold them through reloads (each up to
600 s): `/long?seconds=N` answers after N seconds with N * 1000 bytes;
`/stream?seconds=N` is an SSE stream of N events, one a second; `/ws?seconds=N`
is a WebSocket that sends N text frames, one a second, then a close frame.
SIGQUIT prints a dump of every thread's stack and keeps serving, as a JVM does.

`IGNORE_TERM=1` makes it ignore SIGTERM (it logs the signal and keeps serving),
like a service that does not handle its stop signal: only Docker's SIGKILL at
the end of the stop grace period ends it. Tests use it to check that a replica
Docker still runs after that grace period is served again.
"""

import base64
import faulthandler
import hashlib
import http.server
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

PORT = int(os.environ.get("PORT", "8000"))
HOSTNAME = socket.gethostname()
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B41"  # RFC 6455


def seconds(query, cap):
    try:
        return max(0, min(int(query.get("seconds", ["0"])[0]), cap))
    except ValueError:
        return 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        long_lived = {"/long": self.long, "/stream": self.stream, "/ws": self.websocket}.get(url.path)
        if long_lived:
            long_lived(seconds(query, 600))
            return
        try:
            delay = min(float(query.get("sleep", ["0"])[0]), 10.0)
        except ValueError:
            delay = 0.0
        if delay > 0:
            time.sleep(delay)
        body = (HOSTNAME + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def long(self, n):
        time.sleep(n)
        body = b"x" * (n * 1000)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def stream(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("X-Accel-Buffering", "no")  # nginx passes each event on at once
        self.send_header("Connection", "close")  # the stream ends when the connection does
        self.end_headers()
        for tick in range(1, n + 1):
            self.wfile.write(f"data: tick {tick}\n\n".encode())
            self.wfile.flush()
            time.sleep(1)
        self.close_connection = True

    def websocket(self, n):
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        for tick in range(1, n + 1):
            payload = f"tick {tick}".encode()
            self.wfile.write(bytes([0x81, len(payload)]) + payload)  # FIN + text, unmasked, short
            self.wfile.flush()
            time.sleep(1)
        self.wfile.write(b"\x88\x00")  # close
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins them: in-flight requests finish
    block_on_close = True


def main():
    server = Server(("0.0.0.0", PORT), Handler)

    def terminate(signum, frame):
        # Stop accepting now: close the listening socket, then let the
        # serve_forever loop end and in-flight handler threads finish.
        server.socket.close()
        threading.Thread(target=server.shutdown, daemon=True).start()

    if os.environ.get("IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, lambda signum, frame: print(f"backend {HOSTNAME}: SIGTERM ignored", flush=True))
    else:
        signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    # Like most servers, HUP and USR1 mean "reload/reopen logs", not "stop".
    signal.signal(signal.SIGHUP, lambda signum, frame: print(f"backend {HOSTNAME}: SIGHUP ignored", flush=True))
    signal.signal(signal.SIGUSR1, lambda signum, frame: print(f"backend {HOSTNAME}: SIGUSR1 ignored", flush=True))
    # A thread dump, not a stop (PID 1 without a handler would ignore QUIT; a JVM dumps its threads).
    faulthandler.register(signal.SIGQUIT, all_threads=True)
    print(f"backend {HOSTNAME} listening on {PORT}", flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except (OSError, ValueError):
        pass  # the listening socket was closed under select()
    server.server_close()
    print(f"backend {HOSTNAME} finished in-flight requests, exiting", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
