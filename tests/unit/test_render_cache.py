"""Templates are compiled once per text, not once per render, and the sandbox's answers are kept per type."""

from __future__ import annotations

import os
from pathlib import Path

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
