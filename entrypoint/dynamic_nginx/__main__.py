"""Command line: `python3 -m dynamic_nginx {watch,render,first-render,reload}`.

The only place that exits with a status: settings errors and a failed first
render are fatal at start-up; everything after that logs and carries on.
Imports are made per command: `render` runs on the start-up path and must not
pay for docker-py or watchdog.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import settings as S

PROGRAMS = {"watch": "watcher", "render": "watcher", "first-render": "watcher", "reload": "reloader"}


def _logging(program: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"{program}: %(levelname)s: %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("watchdog").setLevel(logging.WARNING)


def _reload(settings: S.Settings) -> int:
    from .nginx import Nginx, read_command
    from .reloader import Reloader

    Reloader(settings, Nginx(read_command(settings.nginx_args_file), settings.nginx_pid_file)).run()
    return 0


def _watch(settings: S.Settings) -> int:
    from .watcher import Watcher

    Watcher(settings).run()
    return 0


def _render(settings: S.Settings) -> int:
    from .docker_source import DockerSource
    from .watcher import Watcher

    log = logging.getLogger("watcher")
    try:
        model = Watcher(settings).render_once(DockerSource.quick())
    except Exception as error:  # start-up: report in one line, let the caller decide
        log.error("first render failed: %s", " ".join(str(error).split()) or type(error).__name__)
        return 1
    log.info("first render: %s", " ".join(f"{u.name}={len(u.servers)}" for u in model.upstreams) or "no upstreams")
    return 0


def _first_render(settings: S.Settings) -> int:
    """Render, mark it done, then wake supervisord so it starts nginx at once.

    supervisord polls for a second before it starts its programs; a
    connection to its control socket ends that wait. Waking it when the
    render is done starts nginx with its upstreams as early as possible.
    """
    import socket
    import time

    status = _render(settings)
    (settings.run_dir / "render.done").touch()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(settings.run_dir / "supervisor.sock"))
            break
        except OSError:
            time.sleep(0.005)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynamic_nginx")
    parser.add_argument(
        "command",
        choices=sorted(PROGRAMS),
        help="watch: follow Docker and render; render: render once and exit; "
        "first-render: render once at container start and wake supervisord; "
        "reload: watch config files and reload nginx after nginx -t",
    )
    args = parser.parse_args(argv)
    program = PROGRAMS[args.command]
    _logging(program)
    try:
        settings = S.from_env()
    except S.SettingsError as error:
        logging.getLogger(program).error("%s", error)
        return 2
    commands = {"watch": _watch, "render": _render, "first-render": _first_render, "reload": _reload}
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
