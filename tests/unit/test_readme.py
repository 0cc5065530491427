"""Every label example in the README's label tables renders as the README says it does,
and the named-upstream example of docs/labels.md as that page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dynamic_nginx import model, render
from dynamic_nginx.settings import Settings
from support import BUILTIN_TEMPLATES, container, proxy

README = next((p for p in (Path("/src/README.md"), Path(__file__).parents[2] / "README.md") if p.is_file()), None)
ROW = re.compile(r"^\|[^|]*\|[^|]*\|[^|]*\| `(dynamic-nginx\.[a-z_.]+): \"([^\"]*)\"` \| (.+?) \|$", re.M)
SECOND_NETWORK = {"shop_default": "172.18.0.2", "shop_back": "172.19.0.7"}


def examples() -> list[tuple[str, str, str]]:
    assert README is not None, "README.md not found (the image's test stage copies it to /src)"
    rows = [(label, value, shown) for label, value, shown in ROW.findall(README.read_text())]
    assert len(rows) >= 17, f"the README's label tables lost rows: found {len(rows)}"
    return rows


def rendered(labels: dict[str, str]) -> tuple[str, model.Model]:
    networks = SECOND_NETWORK if "dynamic-nginx.network" in labels else None
    the_proxy = proxy(networks=list(SECOND_NETWORK)) if networks else proxy()
    containers = [container(labels=labels, networks=networks)]
    if "dynamic-nginx.backup" in labels:  # a backup needs a primary beside it to stay a backup
        containers.append(container("shop-web-2", ip="172.18.0.3"))
    built = model.build(containers, the_proxy, defaults=Settings().server_defaults)
    templates = render.find_templates([BUILTIN_TEMPLATES])
    return render.render_all(templates, built, Settings()).outputs["dynamic-nginx-upstreams.conf"], built


@pytest.mark.parametrize(("label", "value", "shown"), examples(), ids=lambda x: x if "." in x else None)
def test_readme_label_example(label: str, value: str, shown: str) -> None:
    text, built = rendered({label: value})
    assert built.problems == ()
    if shown == "(left out)":
        assert built.containers == ()
        return
    fragment = re.fullmatch(r"`([^`]*)`", shown)
    assert fragment, f"the README's 'renders as' cell should be one code span: {shown}"
    assert fragment.group(1) in text, text


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        pytest.param(
            {"dynamic-nginx.admin.port": "9000"},
            ["upstream admin.upstream {", "server 172.18.0.2:9000 max_fails=1 fail_timeout=1s;"],
            id="a named upstream on another port",
        ),
        pytest.param(
            {"dynamic-nginx.admin.port": "9000", "dynamic-nginx.admin.weight": "2"},
            ["server 172.18.0.2:9000 weight=2 max_fails=1 fail_timeout=1s;"],
            id="a named upstream's own options",
        ),
    ],
)
def test_readme_named_upstream_examples(labels: dict[str, str], fragments: list[str]) -> None:
    text, built = rendered(labels)
    assert built.problems == ()
    for fragment in fragments:
        assert fragment in text
    assert "upstream web.upstream" not in text  # without dynamic-nginx.port it joins only admin


def test_docs_labels_shows_the_named_upstream_example() -> None:
    assert README is not None
    labels_page = README.parent / "docs" / "labels.md"
    text = " ".join(labels_page.read_text().split())
    for fragment in (
        '`dynamic-nginx.admin.port: "9000"`',
        "`upstream admin.upstream {`",
        "`server 172.18.0.2:9000 max_fails=1 fail_timeout=1s;`",
        '`dynamic-nginx.admin.weight: "2"`',
    ):
        assert fragment in text, f"docs/labels.md no longer shows {fragment}, which this file renders"
