"""The container's nginx command line, read as nginx reads it: one parser, end to end.

Each case here is a command line whose meaning two copies of the parsing
disagreed on: a relative -c next to -p, several -g (nginx reads only the
last), an option nginx refuses.
"""

from __future__ import annotations

import threading
import time

from harness import IMAGE, PROXY, WEB, Project, get, run
from harness import SITE as SITE_FOR

SITE = SITE_FOR.format(upstream="web.upstream")


def with_command(command: str, environment: str = "") -> str:
    extra = f"    command: {command}\n"
    if environment:
        extra += f"    environment:\n{environment}"
    return PROXY + extra + WEB


def test_relative_c_next_to_p_names_the_file_nginx_loads(project):
    """nginx -p /etc/nginx/ -c nginx.conf loads /etc/nginx/nginx.conf: the start-up
    check reads that file, so it finds the include and says nothing false."""
    p: Project = project(
        with_command('["nginx", "-p", "/etc/nginx/", "-c", "nginx.conf", "-g", "daemon off;"]'),
        {"conf.d/default.conf": SITE},
    )
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    logs = p.logs()
    assert "does not include" not in logs, logs


def test_the_shutdown_timeout_goes_into_the_g_that_nginx_reads(project):
    """With two -g, nginx reads the last: DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT
    must be added there, or old workers outlive it and a long request is never cut."""
    p: Project = project(
        with_command(
            '["nginx", "-g", "worker_rlimit_nofile 4096;", "-g", "daemon off;"]',
            "      DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT: 2s\n",
        ),
        {"conf.d/default.conf": SITE},
    )
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    slow: list[tuple[int, str]] = []
    # 10 s: the backend's longest answer; the reload comes well before it ends.
    thread = threading.Thread(target=lambda: slow.append(get(p.port, "/?sleep=10", timeout=30)), daemon=True)
    thread.start()
    time.sleep(1)
    p.up(web=2)  # a reload while the slow request holds an old worker
    p.wait_serving(p.ids("web"))  # the reload happened
    thread.join(30)
    assert slow and slow[0][0] != 200, slow  # cut 2 s after the reload, not served to its end


def test_an_option_nginx_refuses_is_said_by_nginx_at_once(images):
    """As with the official image: nginx names the option and the container exits 1,
    without starting supervisord and restarting nginx until it gives up."""
    done = run(["docker", "run", "--rm", IMAGE, "nginx", "-x", "-g", "daemon off;"], timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert 'nginx: invalid option: "x"' in output, output
    assert "supervisord" not in output, output  # no restart loop first
