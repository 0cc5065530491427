"""The reference pages in docs/ say what the code does: the environment table
lists exactly the variables settings.py reads, with their real defaults, and
every name in the template context table can be read by a template.

The README keeps a short environment table; its rows must agree with the full one.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from dynamic_nginx import model, render, settings
from support import container, proxy

ROOT = next((p for p in (Path("/src"), Path(__file__).parents[2]) if (p / "docs").is_dir()), None)
VARIABLE = re.compile(r"DYNAMIC_NGINX_[A-Z_]*[A-Z]")
CODE = re.compile(r"`([^`]*)`")
# Read at start by command.py (it becomes part of nginx's last -g), not through settings.py.
START_SCRIPT_ONLY = {"DYNAMIC_NGINX_WORKER_SHUTDOWN_TIMEOUT"}


def doc(name: str) -> str:
    assert ROOT is not None, "docs/ not found (the image's test stage copies it to /src/docs)"
    return (ROOT / name).read_text()


def table_rows(text: str, heading: str) -> list[list[str]]:
    """The cells of the first table whose header row starts with `heading`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def environment(text: str) -> dict[str, str]:
    """Variable -> its default cell; `A_MIN` / `_MAX` rows name two variables."""
    found: dict[str, str] = {}
    for cells in table_rows(text, "variable"):
        names = VARIABLE.findall(cells[0])
        names += [names[0].rsplit("_", 1)[0] + suffix for suffix in re.findall(r"`(_[A-Z]+)`", cells[0])]
        for name in names:
            found[name] = cells[1]
    return found


def default_value(name: str, cell: str) -> str | None:
    """The default a cell gives `name` as a value (`0.02` / `0.5` pairs with _MIN / _MAX);
    None when the cell describes it in words (found from mountinfo, a label)."""
    if not cell.startswith("`"):
        return None
    spans = CODE.findall(cell)
    if " / " in cell and len(spans) == 2:
        return spans[name.endswith("_MAX")]
    return spans[0]


def test_every_variable_settings_reads_is_documented_and_nothing_else() -> None:
    documented = set(environment(doc("docs/environment.md")))
    read = {settings.PREFIX + name for name in settings.VARIABLES}
    assert documented - START_SCRIPT_ONLY == read, (
        f"documented but not read: {sorted(documented - START_SCRIPT_ONLY - read)}; "
        f"read but not in docs/environment.md: {sorted(read - documented)}"
    )
    assert documented >= START_SCRIPT_ONLY


def test_the_removed_variables_are_listed_with_what_to_do_instead() -> None:
    listed: set[str] = set()
    for cells in table_rows(doc("docs/environment.md"), "removed"):
        names = VARIABLE.findall(cells[0])
        listed |= {*names, *(names[0].rsplit("_", 1)[0] + s for s in re.findall(r"`(_[A-Z]+)`", cells[0]))}
    assert listed == {settings.PREFIX + name for name in settings.REMOVED}


def test_documented_defaults_are_the_defaults() -> None:
    checked = 0
    for name, cell in environment(doc("docs/environment.md")).items():
        value = default_value(name, cell)
        if name in START_SCRIPT_ONLY or value is None:
            continue
        field, _ = settings.VARIABLES[name.removeprefix(settings.PREFIX)]
        assert getattr(settings.from_env({name: value}), field) == getattr(settings.Settings(), field), name
        checked += 1
    assert checked >= 8, f"only {checked} defaults could be checked"


def test_the_readme_table_agrees_with_the_full_one() -> None:
    short = environment(doc("README.md"))
    full = environment(doc("docs/environment.md"))
    assert len(short) >= 4
    for name, default in short.items():
        assert name in full, f"{name} is in the README but not in docs/environment.md"
        assert default == full[name], name


def context_names() -> list[str]:
    """`upstream.name`, `server.options`, ... from the first column of the context table."""
    names = []
    for cells in table_rows(doc("docs/templates.md"), "name"):
        spans = CODE.findall(cells[0])
        base = spans[0].split(".")[0]
        names += [spans[0]] + [base + span for span in spans[1:] if span.startswith(".")]
        names += [span for span in spans[1:] if not span.startswith(".")]
    return names


PATHS = {
    "upstream": "upstreams[0]",
    "server": "upstreams[0].servers[0]",
    "container": "containers[0]",
}


def test_the_template_context_table_is_complete_enough() -> None:
    names = context_names()
    assert {"upstreams", "containers", "proxy", "settings"} <= set(names)
    assert len(names) >= 25


@pytest.mark.parametrize("name", context_names() if ROOT is not None else [])
def test_every_documented_context_name_renders(name: str, tmp_path: Path) -> None:
    head, _, rest = name.partition(".")
    expression = PATHS.get(head, head) + (f".{rest}" if rest else "")
    built = model.build([container(labels={"dynamic-nginx.keepalive": "8"})], proxy())
    assert built.upstreams and built.containers
    template = tmp_path / "probe.conf.j2"
    template.write_text(f"{{{{ {expression} }}}}")
    # StrictUndefined: a name the docs promise but templates cannot read raises here.
    render.render_one(template, render.context(built, settings.Settings()))


def test_the_context_table_names_every_field_of_the_upstream_and_server() -> None:
    names = set(context_names())
    for cls, prefix in ((model.Upstream, "upstream"), (model.Server, "server")):
        for field in dataclasses.fields(cls):
            assert f"{prefix}.{field.name}" in names, f"docs/templates.md does not document {prefix}.{field.name}"
