"""A demo backend: answers every request with its hostname (the container id).

It behaves like a careful real service on shutdown: on SIGTERM it stops
accepting new connections at once, finishes the requests in flight, then
exits. `?sleep=SECONDS` delays the answer (up to 10 s) to keep requests in flight.
SIGQUIT prints a dump of every thread's stack and keeps serving, as a JVM does.

`IGNORE_TERM=1` makes it ignore SIGTERM (it logs the signal and keeps serving),
like a service that does not handle its stop signal: only Docker's SIGKILL at
the end of the stop grace period ends it. Tests use it to check that a replica
Docker still runs after that grace period is served again.
"""

import faulthandler
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


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
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
