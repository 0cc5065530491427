"""Templates are compiled once per text, not once per render, and the sandbox's answers are kept per type."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dynamic_nginx import model, render
from support import container, proxy, settings_in


def render_text(tmp_path: Path, path: Path) -> str:
    rendered = render.render_all({"out.conf": path}, model.build([container()], proxy()), settings_in(tmp_path))
    assert rendered.errors == {}, rendered.errors
    return rendered.outputs["out.conf"]


def test_a_template_rewritten_within_one_clock_tick_renders_its_new_text(tmp_path: Path) -> None:
    path = tmp_path / "templates" / "out.conf.j2"
    path.parent.mkdir(parents=True)
    path.write_text("# first {{ upstreams | length }}\n")
    assert "# first 1" in render_text(tmp_path, path)
    stat = path.stat()
    path.write_text("# again {{ upstreams | length }}\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same mtime: Jinja2's own check misses it
    assert "# again 1" in render_text(tmp_path, path)


def test_an_unsafe_attribute_stays_unsafe_after_safe_ones_of_the_same_type(tmp_path: Path) -> None:
    path = tmp_path / "templates" / "out.conf.j2"
    path.parent.mkdir(parents=True)
    path.write_text("{{ settings.conf_dir.name }} {{ settings.conf_dir.read_text }}\n")
    for _ in range(2):  # the second render answers from the remembered checks
        rendered = render.render_all({"out.conf": path}, model.build([], proxy()), settings_in(tmp_path))
        assert "out.conf" in rendered.errors and "read_text" in rendered.errors["out.conf"]


# Reads every model type's fields and properties once, as a large render does, so that
# the sandbox's short cut for them is in use when the expression after it runs.
WARM = (
    "{% for u in upstreams %}{{ u.name }} {{ u.zone_size }} {{ u.lb }}"
    "{% for s in u.servers %}{{ s.address }} {{ s.parameters }} {{ s.comment }} {{ s.options.weight }}"
    " {{ s.container.name }} {{ s.container.joined }} {{ s.container.labels }}{% endfor %}{% endfor %}"
    "{{ proxy.name }} {{ containers[0].short_id }}\n"
)


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("{{ upstreams[0].servers[0].container.joined.clear() }}", id="mutate a model dict"),
        pytest.param("{{ upstreams[0].servers[0].container.labels.update(x=1) }}", id="mutate the labels"),
        pytest.param("{{ upstreams[0].__class__ }}", id="class of an upstream"),
        pytest.param("{{ upstreams[0].servers[0].__dict__ }}", id="dict of a server"),
        pytest.param("{{ proxy.__reduce_ex__(2) }}", id="reduce of the proxy"),
        pytest.param("{{ upstreams[0].servers[0].options.__init__.__globals__ }}", id="globals via options"),
        pytest.param("{{ (upstreams[0].servers[0].comment ~ '{0.__class__}').format(proxy) }}", id="format a field"),
    ],
)
def test_model_attributes_read_once_open_nothing_unsafe(tmp_path: Path, hostile: str) -> None:
    path = tmp_path / "templates" / "out.conf.j2"
    path.parent.mkdir(parents=True)
    path.write_text(WARM + hostile + "\n")
    built = model.build([container("shop-web-1", exposed=(8000,), ip="172.18.0.2")], proxy())
    for _ in range(2):  # the second render takes the short cut for every model attribute of WARM
        rendered = render.render_all({"out.conf": path}, built, settings_in(tmp_path))
        assert rendered.outputs == {}
        assert "SecurityError" in rendered.errors["out.conf"], rendered.errors


@pytest.mark.parametrize(
    ("kind", "attribute", "declared"),
    [
        (model.Server, "address", True),  # a field
        (model.Server, "comment", True),  # a cached property
        (model.Server, "parameters", True),  # a property
        (model.Upstream, "zone_size", True),
        (model.Container, "short_id", True),
        (model.Server, "__class__", False),
        (model.Server, "__init__", False),
        (model.Container, "nothing", False),
    ],
)
def test_what_the_short_cut_may_take(kind: type, attribute: str, declared: bool) -> None:
    assert render._declared(kind, attribute) is declared


def test_a_render_after_the_short_cut_is_the_same_text(tmp_path: Path) -> None:
    path = tmp_path / "templates" / "out.conf.j2"
    path.parent.mkdir(parents=True)
    path.write_text(WARM)
    built = model.build([container("shop-web-1", exposed=(8000,), ip="172.18.0.2")], proxy())
    first, second = (render.render_all({"out.conf": path}, built, settings_in(tmp_path)) for _ in range(2))
    assert first.errors == {} and first.outputs == second.outputs
    assert "172.18.0.2:8000" in first.outputs["out.conf"]
