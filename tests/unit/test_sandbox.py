"""Templates render in Jinja2's sandbox: the documented context, and nothing of Python or the file system.

The watcher that renders them holds the Docker socket. A template that tries
to break out fails to render with one line naming it, and its last good
output stays in conf.d.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import model, render, rundir, write
from support import container, proxy, settings_in

HOSTILE = [
    pytest.param("{{ cycler.__init__.__globals__.os.getuid() }}", id="globals of a helper"),
    pytest.param("{{ joiner.__init__.__globals__ }}", id="globals of joiner"),
    pytest.param("{{ namespace.__init__.__globals__ }}", id="globals of namespace"),
    pytest.param("{{ lipsum.__globals__['os'].system('id') }}", id="globals of lipsum"),
    pytest.param("{{ range.__globals__['__builtins__'] }}", id="builtins via range"),
    pytest.param("{{ ''.__class__.__mro__ }}", id="mro of str"),
    pytest.param("{{ [].__class__.mro() }}", id="mro() of list"),
    pytest.param("{{ ().__class__.__base__.__subclasses__() }}", id="subclasses of object"),
    pytest.param("{% for c in ''.__class__.__subclasses__() %}{{ c }}{% endfor %}", id="subclasses in a loop"),
    pytest.param("{{ settings|attr('__class__') }}", id="attr filter"),
    pytest.param("{{ settings.__dict__ }}", id="dict of settings"),
    pytest.param("{{ proxy.__reduce_ex__(2) }}", id="reduce"),
    pytest.param("{{ self._TemplateReference__context }}", id="template context"),
    pytest.param("{{ '{0.__class__.__mro__}'.format(proxy) }}", id="str.format"),
    pytest.param("{{ '{x.__init__.__globals__}'.format_map({'x': cycler}) }}", id="str.format_map"),
    pytest.param("{{ ('{0.__class__}'|attr('format'))(proxy) }}", id="str.format through attr"),
    pytest.param("{{ settings.conf_dir.joinpath('evil.conf').write_text('pwned') }}", id="path write"),
    pytest.param("{{ settings.nginx_args_file.read_text() }}", id="path read"),
    pytest.param("{{ settings.conf_dir.iterdir() | list }}", id="path listing"),
    pytest.param("{{ settings.conf_dir.open('w') }}", id="path open"),
    pytest.param("{{ [1].append(2) }}", id="mutate a list"),
    pytest.param("{{ containers[0].labels.clear() }}", id="mutate a dict"),
]


def render_user(tmp_path: Path, text: str) -> render.Rendered:
    settings = settings_in(tmp_path)
    (settings.run_dir / "nginx.args").write_text("secret\n")
    path = settings.user_templates / "hostile.conf.j2"
    path.write_text(text)
    built = model.build([container("shop-web-1", exposed=(8000,), ip="172.18.0.2")], proxy())
    return render.render_all({"hostile.conf": path}, built, settings)


@pytest.mark.parametrize("text", HOSTILE)
def test_a_template_that_reaches_for_python_internals_fails_with_one_line(tmp_path: Path, text: str) -> None:
    rendered = render_user(tmp_path, text)

    assert rendered.outputs == {}
    line = rendered.errors["hostile.conf"]
    assert line.startswith(f"template {tmp_path}/templates/hostile.conf.j2:1: SecurityError: "), line
    assert "unsafe" in line and "\n" not in line
    assert line.endswith("its previous output is kept until the template is fixed")
    assert not (tmp_path / "conf.d" / "evil.conf").exists()


@pytest.mark.parametrize("text", HOSTILE)
def test_the_last_good_output_stays(tmp_path: Path, text: str) -> None:
    settings = settings_in(tmp_path)
    good = render_user(tmp_path / "before", "# {{ proxy.name }}\n").outputs["hostile.conf"]
    record = settings.run_dir / rundir.WRITTEN
    write.sync(settings.conf_dir, {"hostile.conf": good}, record=record)

    rendered = render_user(tmp_path, text)
    changes = write.sync(settings.conf_dir, rendered.outputs, keep=rendered.errors.keys(), record=record)

    assert not changes and (settings.conf_dir / "hostile.conf").read_text() == good


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("{{ settings.conf_dir }}", "/conf.d", id="a path prints"),
        pytest.param(
            "{{ settings.conf_dir.name }} {{ settings.conf_dir.parent.parts[1] }}", "conf.d tmp", id="pure parts"
        ),
        pytest.param("{{ '{}:{}'.format(proxy.name, 80) }}", "shop-proxy-1:80", id="plain str.format"),
        pytest.param("{{ '%s=%d' % ('a', 1) }}", "a=1", id="percent formatting"),
        pytest.param(
            "{% set ns = namespace(n=0) %}{% for u in upstreams %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}",
            "1",
            id="namespace counter",
        ),
        pytest.param("{{ containers | map(attribute='name') | join(',') }}", "shop-web-1", id="filters"),
        pytest.param("{{ containers[0].labels.items() | list | length > 0 }}", "True", id="dict methods"),
        pytest.param("{{ upstreams[0].servers[0].options.weight }}", "None", id="server options"),
        pytest.param("{{ settings.empty_server }}", "127.0.0.1:29503", id="the 503 server"),
    ],
)
def test_the_documented_context_still_works_in_the_sandbox(tmp_path: Path, text: str, expected: str) -> None:
    rendered = render_user(tmp_path, text)
    assert rendered.errors == {}
    assert rendered.outputs["hostile.conf"].split("\n")[1].endswith(expected)
