"""The run directory: every file name that bash and Python share there, in one place.

The container's processes talk through files in the run dir (a stamp that
the first render is done, the pid to send SIGHUP to, why the container
stops, ...). Python reads the names from here; bash sources the fragment
that `python3 -m dynamic_nginx.rundir` writes at image build
(/usr/local/lib/dynamic-nginx/rundir.sh), so the two cannot disagree, and
bin/start needs no Python start of its own before nginx can start.
"""

from __future__ import annotations

import sys
from pathlib import Path

VARIABLE = "DYNAMIC_NGINX_RUN_DIR"
DEFAULT = Path("/run/dynamic-nginx")

NGINX_ARGS = "nginx.args"  # the container's nginx command, NUL-separated: bin/start writes, run-nginx and nginx -t read
RENDER_DONE = "render.done"  # the first render has finished: run-nginx starts nginx
CHECK_FAILED = "check.failed"  # the first render's nginx -t failed on a user's file: run-nginx waits for a fix
NGINX_RAN = "nginx.ran"  # run-nginx started nginx before in this container: check again first
NGINX_STARTS = "nginx.starts"  # when run-nginx started nginx lately: too many and the container stops
NGINX_MASTER = "nginx.master"  # nginx master's pid, for bin/start's USR1 and TERM
NGINX_STARTED = "nginx.started"  # stamp: when nginx last started (the reloader compares file times with it)
NGINX_RELOADED = "nginx.reloaded"  # stamp: when the reloader last reloaded
START_PID = "start.pid"  # bin/start's pid, for run-nginx's and on-fatal's USR2
RELOADER_PID = "reloader.pid"  # where bin/start sends the container's SIGHUP
FATAL = "fatal"  # one line: why the container stops
SUPERVISOR_SOCK = "supervisor.sock"  # supervisord's control socket (named in supervisord.conf too)
SUPERVISOR_PID = "supervisord.pid"  # named in supervisord.conf
GOOD = "good"  # folder: generated files as of the last nginx -t that passed
WATCHER = "watcher"  # folder the watcher (not root) may write
WRITTEN = "watcher/written"  # the watcher's record of the files it wrote
SERVICES = "watcher/services"  # the services whose upstreams the watcher owns
CONF_D = "conf.d"  # generated files when /etc/nginx/conf.d is read-only
WATCHER_STATUS = "watcher/status.json"  # the watcher's part of the status (status.py)
APPLIED = "watcher/applied.json"  # when the files last written were, and their oldest Docker event (status.py)
RELOAD_STATUS = "reloads.json"  # the reloader's part of the status (status.py)
STATUS_SOCK = "status.sock"  # the status server's socket, nginx proxies the status listener to it
INVALID_SINCE = "invalid-since"  # made when nginx -t first refuses the files, removed at a good reload (health.py)

# bash's run_<key>; every name above, once.
NAMES: dict[str, str] = {
    "nginx_args": NGINX_ARGS,
    "render_done": RENDER_DONE,
    "check_failed": CHECK_FAILED,
    "nginx_ran": NGINX_RAN,
    "nginx_starts": NGINX_STARTS,
    "nginx_master": NGINX_MASTER,
    "nginx_started": NGINX_STARTED,
    "nginx_reloaded": NGINX_RELOADED,
    "start_pid": START_PID,
    "reloader_pid": RELOADER_PID,
    "fatal": FATAL,
    "supervisor_sock": SUPERVISOR_SOCK,
    "supervisor_pid": SUPERVISOR_PID,
    "good": GOOD,
    "watcher": WATCHER,
    "written": WRITTEN,
    "services": SERVICES,
    "conf_d": CONF_D,
    "watcher_status": WATCHER_STATUS,
    "applied": APPLIED,
    "reload_status": RELOAD_STATUS,
    "status_sock": STATUS_SOCK,
    "invalid_since": INVALID_SINCE,
}

# Left by an earlier run of the same container (docker restart): bin/start removes them.
STALE_AT_START = (
    RENDER_DONE,
    NGINX_RAN,
    CHECK_FAILED,
    SUPERVISOR_SOCK,
    FATAL,
    NGINX_STARTS,
    NGINX_MASTER,
    RELOADER_PID,
    START_PID,
)


def shell() -> str:
    """The fragment bash sources: `run` (the run dir, honouring DYNAMIC_NGINX_RUN_DIR),
    then run_<name>=$run/<file> for every name, and the files to remove at start."""
    lines = [
        "# Generated at image build by `python3 -m dynamic_nginx.rundir` from dynamic_nginx/rundir.py.",
        f"run=${{{VARIABLE}:-{DEFAULT}}}",
    ]
    lines += [f"run_{name}=$run/{value}" for name, value in NAMES.items()]
    by_value = {value: name for name, value in NAMES.items()}
    lines.append("run_stale_at_start=(" + " ".join(f'"$run_{by_value[v]}"' for v in STALE_AT_START) + ")")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(shell())
