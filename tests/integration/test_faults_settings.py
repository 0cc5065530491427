"""Settings as a user sets them: a moved run dir moves every file in it, and removed variables are named."""

from __future__ import annotations

import subprocess

from harness import PROXY, SITE, WEB, run, wait_for

RUN_DIR = "/run/elsewhere"
# The user's own configuration, given with -c; /etc/nginx/nginx.conf is broken on purpose,
# so an nginx -t that lost the -c fails, and nothing gets reloaded.
CUSTOM = """
pid /run/nginx.pid;
events { worker_connections 256; }
http {
    include /etc/nginx/conf.d/*.conf;
}
"""
MOVED = PROXY.replace(
    "    volumes:\n",
    f"""    environment:
      DYNAMIC_NGINX_RUN_DIR: {RUN_DIR}
      DYNAMIC_NGINX_DEBOUNCE_MAX: "0.4"
    command: ["nginx", "-c", "/etc/nginx/custom.conf", "-g", "daemon off;"]
    volumes:
      - ./custom.conf:/etc/nginx/custom.conf:ro
      - ./broken.conf:/etc/nginx/nginx.conf:ro
""",
)


def test_a_moved_run_dir_keeps_the_users_command_line_for_nginx_t(project) -> None:
    p = project(
        MOVED + WEB,
        {
            "conf.d/default.conf": SITE.format(upstream="web.upstream"),
            "custom.conf": CUSTOM,
            "broken.conf": "this is not an nginx configuration;\n",
        },
    )
    p.up(web=1)
    p.wait_serving(p.ids("web"), timeout=30)
    p.up(web=2)  # a reload: its nginx -t must read the user's -c from the moved run dir
    p.wait_serving(p.ids("web"), timeout=30)

    command = p.exec("cat", f"{RUN_DIR}/nginx.args").stdout.split("\0")
    assert command[:3] == ["nginx", "-c", "/etc/nginx/custom.conf"], command
    for name in ("nginx.args", "reloader.pid", "start.pid", "supervisor.sock", "watcher/written"):
        assert p.exec("test", "-e", f"{RUN_DIR}/{name}", check=False).returncode == 0, name
        assert p.exec("test", "-e", f"/run/dynamic-nginx/{name}", check=False).returncode != 0, name
    # supervisorctl, as a user runs it, finds supervisord's socket in the moved run dir.
    # (The reloader shows STARTING for its startsecs after any start, so wait for RUNNING.)
    wait_for(
        lambda: "RUNNING" in p.exec("supervisorctl", "status", "reloader").stdout,
        20,
        "supervisorctl to see the reloader",
    )
    # SIGHUP reaches the reloader through its pid file there.
    run(["docker", "kill", "-s", "HUP", p.proxy_id()])
    wait_for(lambda: "SIGHUP: nginx -t, then reload" in p.logs(), 20, "the reloader to answer SIGHUP")

    logs = p.logs()
    assert "nginx -t failed" not in logs
    assert "the reloader is not running yet" not in logs
    # A removed timing variable: one warning naming its replacement, and the proxy runs on.
    warning = [line for line in logs.splitlines() if "DYNAMIC_NGINX_DEBOUNCE_MAX" in line]
    assert len(warning) == 1, warning
    assert "is no longer read, and is ignored: set DYNAMIC_NGINX_WAIT=min:max" in warning[0]


def test_a_removed_path_variable_stops_the_container_with_one_line(project) -> None:
    p = project(
        PROXY.replace("    volumes:\n", "    environment:\n      DYNAMIC_NGINX_USER_TEMPLATES: /srv/t\n    volumes:\n")
    )
    p.compose("up", "-d", "proxy")
    code = wait_for(lambda: _exit_code(p.proxy_id()), 30, "the proxy to stop")
    assert code == "2"
    lines = [line for line in p.logs().splitlines() if "DYNAMIC_NGINX_USER_TEMPLATES" in line]
    # The first render says it; a watcher or reloader that supervisord started meanwhile may say it too.
    assert lines and all(
        line.endswith(
            ": ERROR: DYNAMIC_NGINX_USER_TEMPLATES='/srv/t' is no longer read: mount your templates at /etc/nginx/templates"
        )
        for line in lines
    ), lines
    assert "start worker process" not in p.logs()  # nginx never started


def _exit_code(container: str) -> str:
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", container],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return state[1] if state and state[0] == "exited" else ""
