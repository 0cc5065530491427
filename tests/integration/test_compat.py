"""A drop-in for `image: nginx`: compose files written for the official image run unchanged
but for the image line and behave as its documentation says; user Jinja2 templates; generated
files that break `nginx -t` are put back; live edits of mounted files reload nginx.

The expected behaviour of each compose snippet comes from the official image's documentation
(hub.docker.com/_/nginx) and its entrypoint scripts (nginxinc/docker-nginx), not from running
it: no registry is reachable here.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness import IMAGE, Project, free_port, get, record, run, wait_for

WELCOME = "Welcome to nginx!"


@dataclass(frozen=True)
class Answer:
    """One request and what must come back: the status, a part of the body, the content type."""

    path: str
    status: int
    body: str
    content_type: str = ""


def content_type(port: int, path: str) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.getheader("Content-Type") or ""
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        connection.close()


def answered(p: Project, expected: Answer, timeout: float = 20.0) -> None:
    """Wait until the proxy gives the expected answer; fail with the last one otherwise."""

    def check() -> tuple[int, str] | None:
        status, body = get(p.port, expected.path, timeout=2)
        if status != expected.status or expected.body not in body:
            return None
        if expected.content_type and content_type(p.port, expected.path) != expected.content_type:
            return None
        return status, body

    try:
        wait_for(check, timeout, f"GET {expected.path} -> {expected.status} with {expected.body!r}")
    except AssertionError:
        raise AssertionError(f"{get(p.port, expected.path)} instead of {expected}\n{p.logs()[-4000:]}") from None


def restarts(p: Project) -> int:
    return int(run(["docker", "inspect", "-f", "{{.RestartCount}}", p.proxy_id()]).stdout.strip())


def tcp_read(port: int, timeout: float = 2.0) -> str:
    """Connect to 127.0.0.1:port and read what the server says first; "" on any failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            return sock.recv(1024).decode(errors="replace")
    except OSError:
        return ""


def executable(p: Project, *relative: str) -> None:
    for name in relative:
        os.chmod(p.folder / name, 0o755)


# --- Compose files written for `image: nginx` ------------------------------------------------
# Each row: the compose text (only `image:` differs from what an official-image user has), the
# files beside it, the files that must be executable, and the answers the official image gives.

SITE_V1 = 'server {\n    listen 80;\n    location / { return 200 "v1\\n"; }\n}\n'

CUSTOM_NGINX_CONF = """
user  nginx;
worker_processes  1;
error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;
events { worker_connections 64; }
http {
    server {
        listen 80;
        location / { return 200 "custom nginx.conf\\n"; }
    }
}
"""

PLAIN = """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
"""

NGINX_DEBUG = (
    PLAIN
    + """    command: nginx-debug -g 'daemon off;'
"""
)

COMPAT = [
    pytest.param(
        PLAIN,
        {},
        (),
        [
            Answer("/", 200, WELCOME, "text/html"),
            Answer("/50x.html", 200, "An error occurred"),
            Answer("/missing", 404, "404 Not Found"),
        ],
        id="no volumes: the default page from /usr/share/nginx/html",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
""",
        {"nginx.conf": CUSTOM_NGINX_CONF},
        (),
        [Answer("/", 200, "custom nginx.conf")],
        id="custom nginx.conf mounted read-only",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./default.conf:/etc/nginx/conf.d/default.conf:ro
""",
        {"default.conf": 'server {\n    listen 80;\n    location / { return 200 "my default.conf\\n"; }\n}\n'},
        (),
        [Answer("/", 200, "my default.conf")],
        id="a single mounted default.conf",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./conf.d:/etc/nginx/conf.d:ro
      - ./html:/usr/share/nginx/html:ro
""",
        {
            "conf.d/site.conf": "server {\n    listen 80;\n    root /usr/share/nginx/html;\n}\n",
            "html/index.html": "my own page\n",
            "html/style.css": "p {}\n",
        },
        (),
        [Answer("/", 200, "my own page"), Answer("/style.css", 200, "p {}", "text/css")],
        id="a read-only conf.d and html folder",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./templates:/etc/nginx/templates
    environment:
      - NGINX_HOST=foobar.com
      - NGINX_PORT=80
""",
        {
            "templates/default.conf.template": (
                "server {\n"
                "    listen       ${NGINX_PORT};\n"
                "    server_name  ${NGINX_HOST};\n"
                '    location / { return 200 "host=${NGINX_HOST} uri=$request_uri\\n"; }\n'
                "}\n"
            ),
        },
        (),
        # envsubst replaces only variables that are set: nginx's own $request_uri survives.
        [Answer("/x?y", 200, "host=foobar.com uri=/x?y")],
        id="templates/*.template with environment variables (the documented example)",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./pages:/srv/pages
    environment:
      NGINX_ENVSUBST_TEMPLATE_DIR: /srv/pages
      NGINX_ENVSUBST_TEMPLATE_SUFFIX: .tpl
      NGINX_ENVSUBST_OUTPUT_DIR: /usr/share/nginx/html
      NGINX_ENVSUBST_FILTER: ^SHOWN_
      SHOWN_NAME: alpha
      HIDDEN_NAME: beta
""",
        {
            "pages/index.html.tpl": "${SHOWN_NAME} ${HIDDEN_NAME} $SHOWN_NAME\n",
            "pages/deep/page.html.tpl": "deep ${SHOWN_NAME}\n",
        },
        (),
        [Answer("/", 200, "alpha ${HIDDEN_NAME} alpha"), Answer("/deep/page.html", 200, "deep alpha")],
        id="NGINX_ENVSUBST_TEMPLATE_DIR, _SUFFIX, _OUTPUT_DIR and _FILTER",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80", "127.0.0.1:{port2}:81"]
    volumes:
      - ./templates:/etc/nginx/templates
    environment:
      GREETING: hello
""",
        {"templates/echo.conf.stream-template": 'server {\n    listen 81;\n    return "stream ${GREETING}\\n";\n}\n'},
        (),
        [Answer("/", 200, WELCOME), Answer("tcp", 0, "stream hello")],
        id="a .stream-template goes to stream-conf.d inside a stream block",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./templates:/etc/nginx/templates
    environment:
      NGINX_ENTRYPOINT_LOCAL_RESOLVERS: "1"
""",
        {
            "templates/default.conf.template": (
                "server {\n"
                "    listen 80;\n"
                "    resolver ${NGINX_LOCAL_RESOLVERS};\n"
                '    location / { return 200 "resolvers=${NGINX_LOCAL_RESOLVERS}\\n"; }\n'
                "}\n"
            )
        },
        (),
        [Answer("/", 200, "resolvers=127.0.0.11")],
        id="NGINX_ENTRYPOINT_LOCAL_RESOLVERS for a resolver line",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - ./05-greeting.envsh:/docker-entrypoint.d/05-greeting.envsh
      - ./40-page.sh:/docker-entrypoint.d/40-page.sh
      - ./45-not-executable.sh:/docker-entrypoint.d/45-not-executable.sh
      - ./templates:/etc/nginx/templates
""",
        {
            "05-greeting.envsh": "#!/bin/sh\nexport GREETING=sourced\n",
            "40-page.sh": '#!/bin/sh\necho "written by a hook" > /usr/share/nginx/html/hook.txt\n',
            "45-not-executable.sh": "#!/bin/sh\nrm -rf /usr/share/nginx/html\n",
            "templates/default.conf.template": (
                "server {\n"
                "    listen 80;\n"
                '    location = / { return 200 "greeting=${GREETING}\\n"; }\n'
                "    location / { root /usr/share/nginx/html; }\n"
                "}\n"
            ),
        },
        ("05-greeting.envsh", "40-page.sh"),
        # An executable *.envsh is sourced (later hooks see its variables), an executable *.sh
        # runs, one without the exec bit is ignored.
        [
            Answer("/", 200, "greeting=sourced"),
            Answer("/hook.txt", 200, "written by a hook"),
            Answer("/50x.html", 200, "An error occurred"),
        ],
        id="extra /docker-entrypoint.d hooks",
    ),
    pytest.param(
        NGINX_DEBUG,
        {},
        (),
        [Answer("/", 200, WELCOME)],
        id="command: nginx-debug -g 'daemon off;'",
    ),
    pytest.param(
        """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    read_only: true
    tmpfs: [/var/cache/nginx, /var/run, /tmp]
""",
        {},
        (),
        [Answer("/", 200, WELCOME)],
        id="read_only: true with the documented tmpfs mounts",
    ),
]


@pytest.mark.parametrize(("compose", "files", "scripts", "answers"), COMPAT)
def test_official_image_compose_file_works(project, compose, files, scripts, answers) -> None:
    port2 = free_port()
    p = project(compose.replace("{port2}", str(port2)), files)
    executable(p, *scripts)
    p.up()
    for answer in answers:
        if answer.path == "tcp":
            wait_for(lambda body=answer.body: body in tcp_read(port2), 20, f"{answer.body!r} on the stream port")
        else:
            answered(p, answer)
    time.sleep(1)  # a crash right after the first answer would show as a restart
    assert run(["docker", "inspect", "-f", "{{.State.Status}}", p.proxy_id()]).stdout.strip() == "running"
    assert restarts(p) == 0
    # No Docker socket in these files: nginx serves all the same, and the watcher says what is missing.
    wait_for(lambda: "Docker unreachable at unix:///var/run/docker.sock" in p.logs(), 10, "the watcher's retry line")


def test_image_contract(images):
    config = json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config}}", IMAGE]).stdout)
    assert config["Entrypoint"] == ["/docker-entrypoint.sh"]
    assert config["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert list(config["ExposedPorts"]) == ["80/tcp"]
    assert config["StopSignal"] == "SIGQUIT"
    script = (
        "id nginx; readlink /var/log/nginx/access.log /var/log/nginx/error.log /var/lib/nginx; "
        "nginx -T 2>/dev/null | grep -E '^(pid|user) '; ls /etc/nginx/mime.types /usr/share/nginx/html/index.html"
    )
    out = run(["docker", "run", "--rm", IMAGE, "sh", "-c", script]).stdout.split("\n")
    assert out[:8] == [
        "uid=101(nginx) gid=101(nginx) groups=101(nginx)",
        "/proc/1/fd/1",  # PID 1 is supervisord: its stdout and stderr are the container's
        "/proc/1/fd/2",
        "/var/cache/nginx",  # Debian's temp folders, where the official image has them
        "user  nginx;",
        "pid        /run/nginx.pid;",
        "/etc/nginx/mime.types",
        "/usr/share/nginx/html/index.html",
    ], out


def test_nginx_debug_command_runs_the_debug_binary(project):
    p = project(NGINX_DEBUG)
    p.up()
    answered(p, Answer("/", 200, WELCOME))
    title = p.exec("sh", "-c", "tr '\\0' ' ' </proc/$(cat /run/nginx.pid)/cmdline").stdout
    assert title.startswith("nginx: master process nginx-debug -g daemon off;"), title


def test_stock_hooks_log_as_the_official_ones_do(project):
    p = project(PLAIN)
    p.up()
    answered(p, Answer("/", 200, WELCOME))
    logs = p.logs()
    for line in (
        "/docker-entrypoint.sh: Launching /docker-entrypoint.d/10-listen-on-ipv6-by-default.sh",
        "/docker-entrypoint.sh: Sourcing /docker-entrypoint.d/15-local-resolvers.envsh",
        "/docker-entrypoint.sh: Launching /docker-entrypoint.d/20-envsubst-on-templates.sh",
        "/docker-entrypoint.sh: Launching /docker-entrypoint.d/30-tune-worker-processes.sh",
        "/docker-entrypoint.sh: Configuration complete; ready for start up",
    ):
        assert line in logs, line
    if p.exec("test", "-f", "/proc/net/if_inet6", check=False).returncode == 0:
        assert "10-listen-on-ipv6-by-default.sh: info: Enabled listen on IPv6" in logs
        assert "listen  [::]:80;" in p.exec("cat", "/etc/nginx/conf.d/default.conf").stdout


def test_quiet_logs_silence_the_entrypoint(project):
    p = project(
        PLAIN
        + """    environment:
      NGINX_ENTRYPOINT_QUIET_LOGS: "1"
"""
    )
    p.up()
    answered(p, Answer("/", 200, WELCOME))
    assert "/docker-entrypoint.sh:" not in p.logs()


def test_worker_processes_autotune_follows_the_cpu_limit(project):
    p = project("""
version: "2.4"
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    cpus: 1
    environment:
      NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE: "1"
""")
    p.up()
    answered(p, Answer("/", 200, WELCOME))
    conf = p.exec("cat", "/etc/nginx/nginx.conf").stdout
    assert "\nworker_processes 1;" in conf and "#worker_processes  auto;" in conf, conf


@pytest.mark.parametrize(
    ("command", "output"),
    [
        pytest.param(["nginx", "-t"], "test is successful", id="nginx -t"),
        pytest.param(["nginx", "-V"], "nginx version: nginx/", id="nginx -V"),
        pytest.param(["nginx-debug", "-T"], "# configuration file /etc/nginx/nginx.conf:", id="nginx-debug -T"),
        pytest.param(["sh", "-c", "echo hello from sh"], "hello from sh", id="sh -c"),
    ],
)
def test_other_commands_run_as_they_are(images, command, output):
    result = run(["docker", "run", "--rm", IMAGE, *command], timeout=60)
    assert output in result.stdout + result.stderr
    assert "supervisord" not in result.stdout + result.stderr


def test_compose_exec_nginx_t_and_reload(project):
    p = project(
        PLAIN
        + """    volumes:
      - ./conf.d:/etc/nginx/conf.d
""",
        {"conf.d/default.conf": SITE_V1},
    )
    p.up()
    answered(p, Answer("/", 200, "v1"))
    tested = p.compose("exec", "-T", "proxy", "nginx", "-t")
    assert "test is successful" in tested.stdout + tested.stderr
    (p.folder / "conf.d" / "default.conf").write_text(SITE_V1.replace("v1", "v2"))
    p.compose("exec", "-T", "proxy", "nginx", "-s", "reload")
    answered(p, Answer("/", 200, "v2"), timeout=5)


# --- Read-only, custom nginx.conf: what dynamic-nginx adds there ------------------------------

PROXY = """
services:
  proxy:
    image: {image}
    ports: ["127.0.0.1:{port}:80"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
EXTRA
  web:
    image: {backend}
"""

PROXY_SITE = """
server {
    listen 80;
    location / {
        proxy_pass http://web.upstream;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
    }
    include /etc/nginx/conf.d/*.inc;
}
"""


def proxy_project(project, extra: str, files: dict[str, str]) -> Project:
    return project(PROXY.replace("EXTRA\n", extra), files)


def test_read_only_container_still_follows_docker(project):
    p = proxy_project(
        project,
        """\
      - ./default.conf:/etc/nginx/conf.d/default.conf:ro
    read_only: true
    tmpfs: [/var/cache/nginx, /var/run, /tmp]
""",
        {"default.conf": PROXY_SITE},
    )
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    p.up(web=2)
    p.wait_serving(p.ids("web"))
    assert (
        "dynamic-nginx: /etc/nginx/conf.d is read-only, so generated files go to /run/dynamic-nginx/conf.d"
    ) in p.logs()


def test_read_only_conf_d_mount_still_follows_docker(project):
    p = proxy_project(project, "      - ./conf.d:/etc/nginx/conf.d:ro\n", {"conf.d/default.conf": PROXY_SITE})
    p.up(web=2)
    p.wait_serving(p.ids("web"))
    assert not (p.folder / "conf.d" / "dynamic-nginx-upstreams.conf").exists()
    assert "generated files go to /run/dynamic-nginx/conf.d" in p.logs()


def test_read_only_without_tmpfs_on_run_says_what_to_mount(project):
    p = proxy_project(project, "    read_only: true\n", {})
    p.compose("up", "-d", "proxy")
    wait_for(lambda: "mount a tmpfs on /run" in p.logs(), 20, "the message about /run")
    state = ["docker", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", p.proxy_id()]
    wait_for(lambda: run(state).stdout.strip() == "exited 1", 10, "the container to stop with status 1")
    line = next(x for x in p.logs().splitlines() if "mount a tmpfs on /run" in x)
    assert line.startswith("dynamic-nginx: cannot write /run/dynamic-nginx (read-only file system?)"), line


def test_custom_nginx_conf_without_conf_d_is_reported(project):
    p = proxy_project(project, "      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n", {"nginx.conf": CUSTOM_NGINX_CONF})
    p.up(web=1)
    answered(p, Answer("/", 200, "custom nginx.conf"))
    wanted = (
        "/etc/nginx/nginx.conf does not include /etc/nginx/conf.d/*.conf, so nginx never reads the "
        "generated upstreams: add `include /etc/nginx/conf.d/*.conf;` inside its http { } block"
    )
    wait_for(lambda: wanted in p.logs(), 10, "the one-line message about the missing include")


STREAM_NGINX_CONF = """
LOAD_MODULE
events { worker_connections 64; }
http { server { listen 80; location / { return 200 "http\\n"; } } }
stream { server { listen 81; return "stream\\n"; } }
"""


def test_own_nginx_conf_with_a_stream_block_loads_the_module(project):
    port2 = free_port()
    compose = PLAIN.replace('"127.0.0.1:{port}:80"', f'"127.0.0.1:{{port}}:80", "127.0.0.1:{port2}:81"')
    load = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
    p = project(
        compose + "    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n",
        {"nginx.conf": STREAM_NGINX_CONF.replace("LOAD_MODULE", load)},
    )
    p.up()
    answered(p, Answer("/", 200, "http"))
    wait_for(lambda: tcp_read(port2) == "stream\n", 20, "the stream server's answer")


def test_own_nginx_conf_with_a_stream_block_but_no_module_is_named(project):
    load = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"
    p = project(
        PLAIN + "    volumes:\n      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n",
        {"nginx.conf": STREAM_NGINX_CONF.replace("LOAD_MODULE", "")},
    )
    p.up()
    reported = (
        "ERROR: nginx -t fails because of a file that dynamic-nginx did not generate, so nginx cannot start "
        "until it is fixed: [emerg] "
    )
    cause = (
        'unknown directive "stream" in /etc/nginx/nginx.conf:5 (Debian\'s nginx has the stream module as a '
        f"module: add `{load}` at the top)"
    )

    def lines() -> list[str]:
        return [line for line in p.logs().splitlines() if reported in line]

    wait_for(lines, 20, "the start-up check naming the stream block")
    assert all(line.endswith(cause) for line in lines()), lines()
    time.sleep(3)
    # Said once by the first render's check and once by the wait before nginx starts: nginx is not
    # restarted (and failing) every second meanwhile.
    assert len(lines()) <= 2, lines()
    assert p.logs().count("spawned: 'nginx'") == 1

    edit_in_place(p.folder / "nginx.conf", STREAM_NGINX_CONF.replace("LOAD_MODULE", load))
    answered(p, Answer("/", 200, "http"))
    assert "dynamic-nginx: INFO: nginx -t passes again: starting nginx" in p.logs()


# --- User Jinja2 templates -------------------------------------------------------------------

REPLICAS = """\
location = /replicas {
    return 200 "VERSION {% for u in upstreams if u.name == 'web.upstream' %}{{ u.servers | length }}{% endfor %}\\n";
}
"""

TEMPLATED = """\
      - ./conf.d:/etc/nginx/conf.d
      - ./templates:/etc/nginx/templates
    environment:
      NGINX_HOST: envsubst.test
"""


def templated(project, templates: dict[str, str] | None = None) -> Project:
    """The proxy with conf.d and templates mounted as folders; templates/replicas.inc.j2 renders
    `location = /replicas` answering "v1 <replicas of web>", included by the site's server block."""
    files = {
        "conf.d/default.conf": PROXY_SITE,
        "templates/replicas.inc.j2": REPLICAS.replace("VERSION", "v1"),
    }
    files.update({f"templates/{name}": text for name, text in (templates or {}).items()})
    return proxy_project(project, TEMPLATED, files)


def template(p: Project, name: str = "replicas.inc.j2") -> Path:
    return p.folder / "templates" / name


def test_user_template_follows_the_model_and_its_own_edits(project):
    p = templated(project, {"host.conf.template": "# ${NGINX_HOST} $host\n"})
    p.up(web=1)
    answered(p, Answer("/replicas", 200, "v1 1"))
    p.up(web=3)
    answered(p, Answer("/replicas", 200, "v1 3"))

    template(p, "host.conf.template").write_text("# edited ${NGINX_HOST}\n")  # envsubst runs at start only
    started = time.monotonic()
    template(p).write_text(REPLICAS.replace("VERSION", "v2"))
    answered(p, Answer("/replicas", 200, "v2 3"), timeout=10)
    record("template edit on the host -> new output served (s)", round(time.monotonic() - started, 2))

    # The envsubst template beside it was substituted once; the *.j2 was not touched by envsubst.
    conf_d = p.folder / "conf.d"
    assert (conf_d / "host.conf").read_text() == "# envsubst.test $host\n"
    assert not (conf_d / "replicas.inc.j2").exists()
    assert (conf_d / "replicas.inc").read_text().startswith("# Generated by dynamic-nginx from replicas.inc.j2")


def test_user_template_replaces_the_builtin_one(project):
    override = """\
upstream web.upstream { server unix:/run/dynamic-nginx/override.sock; }
server { listen unix:/run/dynamic-nginx/override.sock; return 200 "overridden, {{ containers | length }}\\n"; }
"""
    p = templated(project, {"dynamic-nginx-upstreams.conf.j2": override})
    p.up(web=2)
    answered(p, Answer("/", 200, "overridden, 2"))


def test_template_that_fails_to_render_keeps_its_output_and_names_file_and_line(project):
    p = templated(project)
    p.up(web=1)
    answered(p, Answer("/replicas", 200, "v1 1"))
    template(p).write_text("# fine\n# fine\n{% if %}\n")
    wanted = "template /etc/nginx/templates/replicas.inc.j2:3: TemplateSyntaxError"
    wait_for(lambda: wanted in p.logs(), 10, "the render error naming the file and line")
    assert "its previous output is kept until the template is fixed" in p.logs()
    p.up(web=2)  # the other templates keep rendering: the new replica is served
    p.wait_serving(p.ids("web"))
    assert get(p.port, "/replicas")[1] == "v1 1"


def test_generated_file_that_breaks_nginx_is_put_back(project):
    p = templated(project)
    p.up(web=1)
    answered(p, Answer("/replicas", 200, "v1 1"))
    started = time.monotonic()
    template(p).write_text("this is not nginx;\n")
    wanted = (
        "reloader: ERROR: nginx -t failed because of generated file /etc/nginx/conf.d/replicas.inc line 2 "
        "(rendered from template replicas.inc.j2): [emerg] "
    )
    wait_for(lambda: wanted in p.logs(), 15, "the put-back message")
    record("bad template output -> last good version put back (s)", round(time.monotonic() - started, 2))
    line = next(x for x in p.logs().splitlines() if x.startswith(wanted))
    assert line.endswith(
        'unknown directive "this" in /etc/nginx/conf.d/replicas.inc:2; put back its last good version'
    ), line
    answered(p, Answer("/replicas", 200, "v1 1"))

    p.up(web=2)  # reloads still happen: the bad output is put back each time
    p.wait_serving(p.ids("web"))

    # A restart renders the bad output again: the check before nginx starts puts it back.
    run(["docker", "restart", "-t", "3", p.proxy_id()], timeout=60)
    answered(p, Answer("/replicas", 200, "v1 1"))  # the output of the template's last good version
    assert restarts(p) == 0
    assert p.logs().count("put back its last good version") >= 2


def test_generated_file_broken_from_the_start_is_removed(project):
    p = templated(project, {"broken.conf.j2": "this is not {{ 'nginx' }};\n"})
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    logs = p.logs()
    assert "nginx -t failed because of generated file /etc/nginx/conf.d/broken.conf line 2" in logs
    assert "removed it (it has no good version yet)" in logs
    assert "nginx: [emerg]" not in logs  # nginx never failed to start


def test_nginx_restarted_by_supervisord_is_checked_first(project):
    p = templated(project)
    p.up(web=1)
    answered(p, Answer("/replicas", 200, "v1 1"))
    # A generated file goes bad on disk while the reloader (and the watcher) are away, then nginx
    # is restarted.
    p.exec("supervisorctl", "stop", "reloader", "watcher")
    p.exec(
        "sh",
        "-c",
        "printf '# Generated by dynamic-nginx from replicas.inc.j2; x\\nbad;\\n' "
        ">/etc/nginx/conf.d/.tmp && mv /etc/nginx/conf.d/.tmp /etc/nginx/conf.d/replicas.inc",
    )
    p.exec("supervisorctl", "restart", "nginx")
    answered(p, Answer("/replicas", 200, "v1 1"))
    wanted = "dynamic-nginx: ERROR: nginx -t failed because of generated file /etc/nginx/conf.d/replicas.inc line 2"
    assert wanted in p.logs()
    assert "nginx: [emerg]" not in p.logs()


# --- Live edits of mounted files ---------------------------------------------------------------

SIMPLE_NGINX_CONF = """
events { worker_connections 64; }
http {
    server { listen 80 default_server; location / { return 200 "VERSION\\n"; } }
    include /etc/nginx/conf.d/*.conf;
}
"""


def edit_in_place(path: Path, text: str) -> None:
    """What `echo > file` or an editor that rewrites the file does: same inode, new content."""
    inode = path.stat().st_ino
    path.write_text(text)
    assert path.stat().st_ino == inode


def test_edit_of_a_file_in_a_mounted_conf_d_reloads(project):
    p = proxy_project(project, "      - ./conf.d:/etc/nginx/conf.d\n", {"conf.d/default.conf": SITE_V1})
    p.up()
    answered(p, Answer("/", 200, "v1"))
    started = time.monotonic()
    edit_in_place(p.folder / "conf.d" / "default.conf", SITE_V1.replace("v1", "v2"))
    answered(p, Answer("/", 200, "v2"), timeout=10)
    record("edit in a mounted conf.d -> served (s)", round(time.monotonic() - started, 2))


def test_edit_of_a_single_file_mounted_nginx_conf_reloads(project):
    p = proxy_project(
        project,
        "      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n",
        {"nginx.conf": SIMPLE_NGINX_CONF.replace("VERSION", "v1")},
    )
    p.up()
    answered(p, Answer("/", 200, "v1"))
    wait_for(lambda: "reloader: INFO: polling files mounted on their own" in p.logs(), 10, "the poll notice")
    started = time.monotonic()
    edit_in_place(p.folder / "nginx.conf", SIMPLE_NGINX_CONF.replace("VERSION", "v2"))
    answered(p, Answer("/", 200, "v2"), timeout=10)
    record(
        "in-place edit of a single-file-mounted nginx.conf -> served (s)",
        round(time.monotonic() - started, 2),
    )


def test_replacing_a_single_file_mount_is_not_seen(project):
    """The documented limitation (the official image has it too): a file mounted on its own and
    replaced on the host (a new inode, as editors that save atomically do) stays old inside."""
    p = proxy_project(
        project,
        "      - ./nginx.conf:/etc/nginx/nginx.conf:ro\n",
        {"nginx.conf": SIMPLE_NGINX_CONF.replace("VERSION", "v1")},
    )
    p.up()
    answered(p, Answer("/", 200, "v1"))
    fresh = p.folder / "nginx.conf.new"
    fresh.write_text(SIMPLE_NGINX_CONF.replace("VERSION", "v2"))
    os.replace(fresh, p.folder / "nginx.conf")
    time.sleep(3)
    assert get(p.port, "/") == (200, "v1")
    p.compose("exec", "-T", "proxy", "nginx", "-s", "reload")
    time.sleep(1)
    assert get(p.port, "/") == (200, "v1")
