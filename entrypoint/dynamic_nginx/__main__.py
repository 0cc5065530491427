"""Command line: `python3 -m dynamic_nginx {watch,render,first-render,reload,check,check-and-wait,status-server,explain}`.

The only place that exits with a status: settings errors and a failed first
render are fatal at start-up; everything after that logs and carries on.
Imports are made per command: `render` runs on the start-up path and must not
pay for docker-py or watchdog.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from . import rundir
from . import settings as S

PROGRAMS = {
    "watch": "watcher",
    "render": "watcher",
    "first-render": "watcher",
    "reload": "reloader",
    "check": "dynamic-nginx",
    "check-and-wait": "dynamic-nginx",
    "status-server": "status",
    "explain": "explain",
}


def _logging(program: str, level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"{program}: %(levelname)s: %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    logging.getLogger("docker").setLevel(logging.INFO)
    logging.getLogger("watchdog").setLevel(logging.WARNING)


def _reload(settings: S.Settings) -> int:
    import signal
    import threading

    from .command import read
    from .generations import Keeper
    from .nginx import Nginx, children
    from .reloader import Reloader, log

    nginx = Nginx(read(settings.nginx_args_file).argv, settings.nginx_pid_file, retire_early=True)
    reloader = Reloader(settings, nginx)
    # bin/start, the container's PID 1, passes a SIGHUP on to us: a handler only sets an event.
    signal.signal(signal.SIGHUP, lambda *_: reloader.asked.set())
    threading.Thread(target=reloader.answer_requests, name="sighup", daemon=True).start()
    (settings.run_dir / rundir.RELOADER_PID).write_text(f"{os.getpid()}\n")
    keeper = Keeper(settings.max_old_generations, nginx.master_pid, log, children)
    stop = threading.Event()
    threading.Thread(target=keeper.run, args=(stop,), name="generations", daemon=True).start()
    try:
        reloader.run()  # until supervisord ends the process with a signal
    finally:
        stop.set()
    return 0


def _check(settings: S.Settings) -> int:
    """Before nginx starts: generated files pass nginx -t (or are put back), problems are named."""
    from . import startup
    from .command import read
    from .nginx import Nginx

    nginx = Nginx(read(settings.nginx_args_file).argv, settings.nginx_pid_file)
    return 0 if startup.check(settings, nginx, logging.getLogger("startup")) else 1


def _check_and_wait(settings: S.Settings) -> int:
    """Like check, then wait while a user's file fails nginx -t: nginx starts once it is fixed."""
    import signal
    import threading

    from . import startup
    from .command import read
    from .nginx import Nginx

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):  # supervisord stops "nginx" with QUIT
        signal.signal(signum, lambda *_: stop.set())
    nginx = Nginx(read(settings.nginx_args_file).argv, settings.nginx_pid_file)
    try:
        return 0 if startup.wait_until_valid(settings, nginx, logging.getLogger("startup"), stop) else 1
    except startup.StillInvalid as error:
        # run-nginx hands this line to the container's PID 1, which stops the container with it.
        (settings.run_dir / rundir.FATAL).write_text(
            f"nginx -t still fails after {startup.GIVE_UP_AFTER:.0f} s, so nginx cannot start: {error}\n"
        )
        return 3


def _status_server(settings: S.Settings) -> int:
    from . import status_server

    return status_server.serve(settings)


def _watch(settings: S.Settings) -> int:
    from . import privilege
    from .watcher import Watcher

    privilege.drop(settings.conf_dir, os.environ.get("DOCKER_HOST"))
    Watcher(settings).run()
    return 0


# Per request, for the start-up render: a stalled engine must not hold nginx
# back for long. If it runs out, nginx starts with 503s and the watcher catches up.
FIRST_RENDER_TIMEOUT = 1.0


def _render(settings: S.Settings, start_up: bool = False) -> int:
    """Render once. At start-up, a Docker that cannot be asked does not keep
    nginx from starting: every upstream the configuration mentions is rendered
    with no server (nginx answers 503 for it) until the watcher reaches Docker."""
    from .docker_source import DockerSource, NotFound
    from .status import WatcherStatus
    from .swarm_source import for_mode
    from .watcher import Watcher

    log = logging.getLogger("watcher")
    watcher = Watcher(settings)
    # Nothing but the files before nginx starts: the watcher writes the status once it follows Docker.
    watcher.status = WatcherStatus(None)
    try:
        source = DockerSource.quick(FIRST_RENDER_TIMEOUT if start_up else 10.0)
        model = watcher.render_once(for_mode(source, settings.mode, settings.container))
    except Exception as error:  # start-up: report in one line, let the caller decide
        if not start_up or watcher.answered:  # Docker answered: what failed was not Docker
            log.error("first render failed: %s", " ".join(str(error).split()) or type(error).__name__)
            return 1
        from . import reconnect

        try:
            model = watcher.render_without_docker()
        except Exception as second:
            log.error("first render failed: %s; then without Docker: %s", reconnect.one_line(error), second)
            return 1
        if isinstance(error, NotFound):  # Docker answered: its message says what to fix
            line = reconnect.one_line(error)
        else:
            line = reconnect.describe(reconnect.classify(error), reconnect.endpoint(), reconnect.one_line(error), error)
        names = ", ".join(u.name for u in model.upstreams) or "none"
        log.error(
            "first render: %s; nginx starts, and these upstreams answer 503 until Docker answers: %s", line, names
        )
        return 0
    log.info("first render: %s", " ".join(f"{u.name}={len(u.servers)}" for u in model.upstreams) or "no upstreams")
    return 0


def _render_unprivileged(settings: S.Settings) -> int:
    """The start-up render, in a child that has dropped root as the watcher does
    (it reads labels), while this process stays root for the nginx -t after it."""
    from . import privilege

    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            privilege.drop(settings.conf_dir, os.environ.get("DOCKER_HOST"), report=False)
            status = _render(settings, start_up=True)
        except BaseException as error:
            logging.getLogger("watcher").error("first render failed: %s", error)
        finally:
            logging.shutdown()
            os._exit(status)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _first_render(settings: S.Settings) -> int:
    """Render, mark it done, then wake supervisord so it starts nginx at once.

    supervisord polls for a second before it starts its programs; a
    connection to its control socket ends that wait. Waking it when the
    render is done starts nginx with its upstreams as early as possible.
    """
    import socket
    import time

    status = _render_unprivileged(settings)
    failed = settings.run_dir / rundir.CHECK_FAILED  # run-nginx then waits for a fix before starting nginx
    try:
        if _check(settings) == 0:
            failed.unlink(missing_ok=True)
        else:
            failed.touch()
    except Exception as error:  # the check must never keep nginx from starting
        logging.getLogger("startup").error("start-up check failed: %s", error)
    (settings.run_dir / rundir.RENDER_DONE).touch()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(settings.run_dir / rundir.SUPERVISOR_SOCK))
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
        "reload: watch config files and reload nginx after nginx -t; "
        "check: before nginx starts, put back generated files nginx -t rejects; "
        "check-and-wait: the same, then wait while a user's file fails nginx -t; "
        "status-server: answer the status page, status.json and /metrics for nginx; "
        "explain NAME: every step of the decision about a container, or each of a service's",
    )
    parser.add_argument("target", nargs="?", help="explain: a container's name or id, or a service's name")
    args = parser.parse_args(argv)
    if (args.command == "explain") != (args.target is not None):
        parser.error("explain takes one container or service name; the other commands take none")
    program = PROGRAMS[args.command]
    try:
        settings = S.from_env()
    except S.SettingsError as error:
        _logging(program, S.Settings.log_level)
        logging.getLogger(program).error("%s", error)
        return 2
    _logging(program, settings.log_level)
    if args.command == "first-render":  # once per container start, not once per program
        for line in S.removed():
            logging.getLogger(program).warning("%s", line)
    if args.command == "explain":
        from . import explain

        return explain.main(args.target, settings, sys.stdout)
    commands: dict[str, Callable[[S.Settings], int]] = {
        "watch": _watch,
        "render": _render,
        "first-render": _first_render,
        "reload": _reload,
        "check": _check,
        "check-and-wait": _check_and_wait,
        "status-server": _status_server,
    }
    return commands[args.command](settings)


if __name__ == "__main__":
    sys.exit(main())
