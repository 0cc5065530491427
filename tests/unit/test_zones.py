"""Upstream zones hold their servers at any size: the real `nginx -t` accepts what the built-in
template renders, from one server to thousands, and a zone that is still too small is reported
in one line naming the upstream and the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import labels as L
from dynamic_nginx import model, render, write
from dynamic_nginx.model import Container
from dynamic_nginx.nginx import Nginx, first_error
from support import BUILTIN_NAME, container, needs_nginx, nginx_command, proxy, settings_in

SERVER = "    server { listen 127.0.0.1:8099; location / { proxy_pass http://web.upstream; } }\n"

# Long server lines, every parameter a label can set, so the zone holds the most a server can cost.
LONG = {
    L.LABEL_PREFIX + "weight": "100",
    L.LABEL_PREFIX + "max_fails": "100",
    L.LABEL_PREFIX + "fail_timeout": "3600s",
    L.LABEL_PREFIX + "max_conns": "1000",
}


def replicas(count: int) -> list[Container]:
    """`count` replicas of web with long server lines, one in three a backup (a primary stays)."""
    made = []
    for n in range(1, count + 1):
        labels = dict(LONG)
        if n % 3 == 0:
            labels[L.LABEL_PREFIX + "backup"] = "true"
        ip = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
        made.append(container(f"shop-web-{n}", number=n, ip=ip, labels=labels, exposed=(8000,)))
    return made


def render_into(tmp_path: Path, containers: list[Container]) -> tuple[Nginx, str]:
    settings = settings_in(tmp_path)
    command = nginx_command(tmp_path, settings.conf_dir, server=SERVER)
    built = model.build(containers, proxy(), {"web.upstream"})
    assert built.problems == ()
    templates = render.find_templates([settings.user_templates, settings.builtin_templates])
    rendered = render.render_all(templates, built, settings)
    assert rendered.errors == {}
    write.sync(settings.conf_dir, rendered.outputs)
    return Nginx(command, settings.nginx_pid_file), rendered.outputs[BUILTIN_NAME]


@pytest.mark.parametrize(
    ("count", "size"),
    [(1, "64k"), (31, "64k"), (70, "128k"), (71, "128k"), (300, "512k"), (2000, "4096k")],
)
def test_zone_size_grows_with_the_servers(count: int, size: str) -> None:
    # Small upstreams keep the 64k every upstream had before zones were sized.
    assert model.zone_size(count) == size


def test_zone_size_never_shrinks_as_servers_are_added() -> None:
    sizes = [int(model.zone_size(n)[:-1]) for n in range(0, 5001)]
    assert sizes == sorted(sizes)


@needs_nginx
@pytest.mark.parametrize("count", [1, 70, 71, 300, 2000])
def test_nginx_accepts_an_upstream_of(tmp_path: Path, count: int) -> None:
    nginx, text = render_into(tmp_path, replicas(count))
    assert text.count(" weight=100 max_fails=100 fail_timeout=3600s max_conns=1000") == count
    assert f"zone web.upstream {model.zone_size(count)};" in text
    result = nginx.test()
    assert result.ok, result.message


@needs_nginx
def test_the_old_fixed_zone_fails_at_71_servers_and_says_which_upstream_and_limit(tmp_path: Path) -> None:
    # Why zones are sized: the 64k every upstream had cannot hold 71 servers. The failure names
    # the upstream, the limit and the fix on one line, so it is never kept silently.
    nginx, text = render_into(tmp_path, replicas(71))
    conf = tmp_path / "conf.d" / BUILTIN_NAME
    conf.write_text(text.replace(f"zone web.upstream {model.zone_size(71)};", "zone web.upstream 64k;"))
    result = nginx.test()
    assert not result.ok
    assert "\n" not in result.message
    assert result.message.startswith("upstream web.upstream: its shared-memory zone is too small"), result.message
    assert '"zone web.upstream"' in result.message
    assert "ngx_slab_alloc() failed: no memory" in result.message
    assert "upstream.zone_size" in result.message


def test_other_errors_are_left_as_nginx_said_them() -> None:
    output = '2026/11/30 22:54:44 [emerg] 10#10: host not found in upstream "x.upstream" in /etc/nginx/a.conf:3'
    assert first_error(output) == '[emerg] host not found in upstream "x.upstream" in /etc/nginx/a.conf:3'
