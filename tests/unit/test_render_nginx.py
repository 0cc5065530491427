"""What the built-in template renders is accepted by the real `nginx -t`, with and without servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import model, render, write
from dynamic_nginx.model import Container
from dynamic_nginx.nginx import Nginx
from support import BUILTIN_NAME, container, needs_nginx, nginx_command, proxy, settings_in

# The user's server, as in the brief: it refers to web.upstream whether or not web runs.
SERVER = "    server { listen 127.0.0.1:8099; location / { proxy_pass http://web.upstream; } }\n"

pytestmark = needs_nginx


def render_into(tmp_path: Path, containers: list[Container], extra_from_config: bool = True) -> Nginx:
    """Render the built-in template into tmp_path/conf.d as the watcher would; return an Nginx for tmp_path."""
    settings = settings_in(tmp_path)
    command = nginx_command(tmp_path, settings.conf_dir, server=SERVER)
    known = model.referenced_upstreams([(tmp_path / "nginx.conf").read_text()]) if extra_from_config else set()
    built = model.build(containers, proxy(), known)
    rendered = render.render_all(
        render.find_templates([settings.user_templates, settings.builtin_templates]), built, settings
    )
    assert rendered.errors == {}
    write.sync(settings.conf_dir, rendered.outputs)
    return Nginx(command, settings.nginx_pid_file)


@pytest.mark.parametrize(
    ("containers", "empty"),
    [
        pytest.param([], {"web.upstream"}, id="no containers: web.upstream is empty"),
        pytest.param(
            [container("shop-web-1", state="paused")],
            {"web.upstream"},
            id="paused service: web.upstream is empty",
        ),
        pytest.param(
            [
                container("shop-web-1", number=1, ip="172.18.0.2", exposed=(8000,)),
                container("shop-web-2", number=2, ip="172.18.0.3", exposed=(8000,)),
                container("shop-api-1", service="api", state="paused"),
            ],
            {"api.upstream"},
            id="web served by two replicas, api empty",
        ),
    ],
)
def test_nginx_accepts_the_rendered_upstreams(tmp_path: Path, containers: list[Container], empty: set[str]) -> None:
    nginx = render_into(tmp_path, containers)
    text = (tmp_path / "conf.d" / BUILTIN_NAME).read_text()
    for name in empty:
        assert f"upstream {name} {{\n    zone {name} 64k;\n    # No live" in text
    result = nginx.test()
    assert result.ok, result.message


def test_without_the_referenced_upstream_nginx_refuses_the_config(tmp_path: Path) -> None:
    # Why build() takes the names the config refers to: this is what nginx says otherwise.
    result = render_into(tmp_path, [], extra_from_config=False).test()
    assert not result.ok
    assert 'host not found in upstream "web.upstream"' in result.message
