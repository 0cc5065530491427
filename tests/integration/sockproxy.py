"""A socket proxy in front of the Docker socket that a test can stop and start.

    python3 sockproxy.py LISTEN_SOCKET [UPSTREAM_SOCKET] [--allow REGEX ...] [--mode 600]
    python3 sockproxy.py tcp://HOST:PORT [UPSTREAM_SOCKET] [--allow ...] [--tls CERT_FOLDER]

Runs in a container of the backend image (it has python3, nothing else is
needed): the listening socket is in a folder mounted from the host, so the
proxy under test, mounting the same folder, sees each new socket after a
restart. Each request is read (request line and headers), logged on stdout
as `METHOD PATH -> STATUS`, checked against the allow-list (all allowed when
none is given; a refused one is answered 403 as common socket proxies do), and
forwarded with `Connection: close`, so that every request of a keep-alive
client is seen and checked; the answer (an event stream included) is piped
back until the engine closes it. On TCP it serves plain HTTP, or with
`--tls FOLDER` TLS with FOLDER/server-cert.pem, server-key.pem, and client
certificates required, signed by FOLDER/ca.pem (as dockerd's --tlsverify).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading


def read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The request head (up to the blank line) and whatever of the body came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 1 << 20:
            return None
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock, how in ((target, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


class Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        client: socket.socket = self.request
        got = read_head(client)
        if got is None:
            return
        head, rest = got
        lines = head.decode("latin-1").split("\r\n")
        method, _, target = lines[0].partition(" ")
        path = target.rsplit(" ", 1)[0]
        if not self.server.allowed(method, path):
            body = json.dumps({"message": f"{method} {path} is not allowed by the socket proxy"}).encode()
            client.sendall(
                b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            print(f"{method} {path} -> 403", flush=True)
            return
        kept = [line for line in lines[1:] if not line.lower().startswith("connection:")]
        request = "\r\n".join([lines[0], *kept, "Connection: close"]).encode() + b"\r\n\r\n" + rest
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.server.upstream)
        except OSError as error:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            print(f"{method} {path} -> 502 ({error})", flush=True)
            return
        print(f"{method} {path} -> forwarded", flush=True)
        with upstream:
            upstream.sendall(request)
            if isinstance(client, ssl.SSLSocket):
                # A TLS socket cannot be half-closed; Docker's GET/HEAD bodies came with the head.
                pipe_tls(upstream, client)
                return
            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            back.start()
            pipe(client, upstream)  # a request body, if any; ends when the client closes or shuts down
            back.join()


def pipe_tls(upstream: socket.socket, client: ssl.SSLSocket) -> None:
    """The engine's answer back to a TLS client, until the engine closes it (or the client goes)."""
    try:
        while chunk := upstream.recv(65536):
            client.sendall(chunk)
    except OSError:
        pass


class Allowing:
    upstream: str
    allow: list[re.Pattern[str]]

    def allowed(self, method: str, path: str) -> bool:
        return not self.allow or any(p.fullmatch(f"{method} {path}") for p in self.allow)


class Server(Allowing, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, listen: str, upstream: str, allow: list[str]):
        self.upstream = upstream
        self.allow = [re.compile(pattern) for pattern in allow]
        super().__init__(listen, Handler)


class TcpServer(Allowing, socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], upstream: str, allow: list[str], tls: str | None):
        self.upstream = upstream
        self.allow = [re.compile(pattern) for pattern in allow]
        self.context: ssl.SSLContext | None = None
        if tls:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=f"{tls}/ca.pem")
            self.context.load_cert_chain(f"{tls}/server-cert.pem", f"{tls}/server-key.pem")
            self.context.verify_mode = ssl.CERT_REQUIRED
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):  # type: ignore[no-untyped-def]
        # The handshake in the request's own thread, so that a bad client cannot stall the others.
        if self.context is not None:
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as error:
                print(f"TLS handshake refused: {error}", flush=True)
                return
        super().finish_request(request, client_address)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("listen")
    parser.add_argument("upstream", nargs="?", default="/var/run/docker.sock")
    parser.add_argument("--allow", action="append", default=[], help="regex over 'METHOD PATH?QUERY'")
    parser.add_argument("--mode", default="666", help="the listening socket's mode, in octal")
    parser.add_argument("--tls", help="folder with ca.pem, server-cert.pem, server-key.pem (TCP only)")
    args = parser.parse_args()
    if args.listen.startswith("tcp://"):
        host, _, port = args.listen[len("tcp://") :].rpartition(":")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        tcp = TcpServer((host or "0.0.0.0", int(port)), args.upstream, args.allow, args.tls)
        print(f"listening on {args.listen}{' with TLS' if args.tls else ''}, forwarding to {args.upstream}", flush=True)
        tcp.serve_forever()
        return
    if os.path.exists(args.listen):
        os.unlink(args.listen)  # left by a proxy that was killed
    server = Server(args.listen, args.upstream, args.allow)
    os.chmod(args.listen, int(args.mode, 8))
    # PID 1 in a container ignores TERM unless it handles it.
    signal.signal(signal.SIGTERM, lambda *_: (os.unlink(args.listen), sys.exit(0)))
    print(f"listening on {args.listen}, forwarding to {args.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
