"""render: templates found in folders, rendered with the model; one broken template never stops the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import model, render
from dynamic_nginx.marker import MARKER
from dynamic_nginx.model import Model
from dynamic_nginx.settings import Settings
from support import BUILTIN_NAME, BUILTIN_TEMPLATES, container, proxy, settings_in

HEADER = f"{MARKER} from {BUILTIN_NAME}.j2; changes are overwritten.\n"

MODELS = [
    pytest.param(model.build([], proxy()), id="empty model"),
    pytest.param(model.build([], proxy(), ["api.upstream"]), id="upstream without servers"),
    pytest.param(
        model.build(
            [
                container("shop-web-1", number=1, ip="172.18.0.2"),
                container("shop-web-2", number=2, ip="172.18.0.3"),
            ],
            proxy(),
        ),
        id="upstream with servers",
    ),
]


def render_builtin(built: Model, settings: Settings) -> str:
    rendered = render.render_all(render.find_templates([BUILTIN_TEMPLATES]), built, settings)
    assert rendered.errors == {}
    return rendered.outputs[BUILTIN_NAME]


def write_template(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_upstream_without_servers_points_at_the_503_server(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    text = render_builtin(model.build([container(state="paused")], proxy(), ["API.upstream"]), settings)
    for name in ("api.upstream", "web.upstream"):
        assert (
            f"upstream {name} {{\n"
            f"    zone {name} 64k;\n"
            "    # No live container: the built-in server below answers 503.\n"
            "    server 127.0.0.1:29503;\n"
            "}\n"
        ) in text
    assert "    listen 127.0.0.1:29503;\n" in text
    assert "unix:" not in text and str(tmp_path) not in text, "nothing outside conf.d"


@pytest.mark.parametrize("built", MODELS)
def test_output_begins_with_the_marker_line(built: Model) -> None:
    assert render_builtin(built, Settings()).startswith(HEADER)


@pytest.mark.parametrize("built", MODELS)
def test_rendering_is_deterministic(built: Model) -> None:
    assert render_builtin(built, Settings()) == render_builtin(built, Settings())


def test_container_order_does_not_change_the_output() -> None:
    containers = [
        container("shop-web-2", number=2, ip="172.18.0.3"),
        container("shop-api-1", service="api", ip="172.18.0.9"),
        container("shop-web-1", number=1, ip="172.18.0.2"),
    ]
    first = render_builtin(model.build(containers, proxy()), Settings())
    second = render_builtin(model.build(reversed(containers), proxy()), Settings())
    assert first == second


@pytest.mark.parametrize(
    ("text", "line", "kind"),
    [
        pytest.param(
            "{% for u in upstreams %}\n{{ u.name }\n{% endfor %}\n",
            2,
            "TemplateSyntaxError",
            id="syntax error",
        ),
        pytest.param("{% if true %}\nx\n", 2, "TemplateSyntaxError", id="unclosed block"),
        pytest.param("{{ upstreams | no_such_filter }}\n", 1, "TemplateAssertionError", id="unknown filter"),
        pytest.param("# ok\n# still ok\n{{ no_such_variable }}\n", 3, "UndefinedError", id="undefined variable"),
        pytest.param(
            "{% for u in upstreams %}\n\n{{ u.no_such_field }}\n{% endfor %}\n",
            3,
            "UndefinedError",
            id="undefined attribute",
        ),
        pytest.param("a\nb\nc\n{{ 1 // 0 }}\n", 4, "ZeroDivisionError", id="exception while rendering"),
        pytest.param("{{ '%d' | format(upstreams[0].name) }}\n", 1, "TypeError", id="exception inside a filter"),
    ],
)
def test_broken_user_template_is_reported_and_others_still_render(
    tmp_path: Path, text: str, line: int, kind: str
) -> None:
    user = tmp_path / "templates"
    broken = write_template(user, "broken.conf.j2", text)
    write_template(user, "fine.conf.j2", "# fine\n")
    templates = render.find_templates([user, BUILTIN_TEMPLATES])
    rendered = render.render_all(templates, model.build([container()], proxy(), ["api.upstream"]), Settings())

    assert set(rendered.errors) == {"broken.conf"}
    message = rendered.errors["broken.conf"]
    assert message.startswith(f"template {broken}:{line}: {kind}: ")
    assert "\n" not in message
    assert sorted(rendered.outputs) == [BUILTIN_NAME, "fine.conf"]
    assert rendered.outputs["fine.conf"].endswith("# fine\n")


def test_user_template_with_a_builtin_name_overrides_it(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    mine = write_template(user, f"{BUILTIN_NAME}.j2", "{% for u in upstreams %}# mine: {{ u.name }}\n{% endfor %}")

    assert render.find_templates([user, BUILTIN_TEMPLATES]) == {BUILTIN_NAME: mine}
    rendered = render.render_all({BUILTIN_NAME: mine}, model.build([container()], proxy()), Settings())
    assert rendered.outputs == {BUILTIN_NAME: HEADER + "# mine: web.upstream\n"}


def test_earlier_folder_wins(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    write_template(user, f"{BUILTIN_NAME}.j2", "# mine\n")
    assert render.find_templates([BUILTIN_TEMPLATES, user]) == {BUILTIN_NAME: BUILTIN_TEMPLATES / f"{BUILTIN_NAME}.j2"}


def test_find_templates_takes_only_usable_names(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    for name in (
        "a.conf.j2",
        "b.conf",
        "b.conf.j2~",
        ".hidden.conf.j2",
        "-dash.conf.j2",
        "sp ace.conf.j2",
        "x;y.j2",
    ):
        write_template(user, name, "# x\n")
    (user / "folder.conf.j2").mkdir()
    assert render.find_templates([user, tmp_path / "missing"]) == {"a.conf": user / "a.conf.j2"}


def test_templates_see_the_documented_context(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    path = write_template(
        user,
        "context.conf.j2",
        "# proxy {{ proxy.name }} in {{ proxy.project }} on {{ proxy.networks | join(',') }}\n"
        "{% for c in containers %}# container {{ c.name }} service {{ c.service }}\n{% endfor %}"
        "{% for u in upstreams %}{% for s in u.servers %}"
        "# {{ u.name }} {{ s.address }} port {{ s.port }} via {{ s.network }}\n"
        "{% endfor %}{% endfor %}"
        "# 503 at {{ settings.empty_server }}",
    )
    built = model.build([container("shop-web-1", exposed=(8000,), ip="172.18.0.2")], proxy())
    rendered = render.render_all({"context.conf": path}, built, Settings())
    assert rendered.outputs["context.conf"] == (
        f"{MARKER} from context.conf.j2; changes are overwritten.\n"
        "# proxy shop-proxy-1 in shop on shop_default\n"
        "# container shop-web-1 service web\n"
        "# web.upstream 172.18.0.2:8000 port 8000 via shop_default\n"
        "# 503 at 127.0.0.1:29503\n"  # a final newline is added when the template has none
    )
