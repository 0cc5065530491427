"""Golden files: containers described in golden/NAME.in render to exactly golden/NAME.conf.

A new behaviour is a new pair of files. The `.in` format, one item per line
(`#` starts a comment line):

    proxy project=shop networks=shop_default,shop_back
    container NAME key=value ...    keys: service project number oneoff ip net=NETWORK:IP
                                    expose=PORT label=KEY=VALUE state health (net, expose and
                                    label may repeat; ip=X is net=shop_default:X)
    extra NAME.upstream             an upstream the user's config refers to
    problem TEXT                    a line model.build must report, in order

The built-in template renders with the image's default settings, so the
socket path is /run/dynamic-nginx/empty.sock in every expected file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import model, render
from dynamic_nginx.model import Container, Proxy
from dynamic_nginx.settings import Settings
from support import BUILTIN_NAME, BUILTIN_TEMPLATES, NETWORK, container, proxy

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(path.stem for path in GOLDEN.glob("*.in"))


def parse_case(text: str) -> tuple[Proxy, list[Container], list[str], list[str]]:
    """The proxy, containers, extra upstream names and expected problems described by an .in file."""
    the_proxy = proxy()
    containers: list[Container] = []
    extra: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        if kind == "proxy":
            fields = dict(token.split("=", 1) for token in rest.split())
            the_proxy = proxy(project=fields["project"], networks=fields["networks"].split(","))
        elif kind == "container":
            containers.append(parse_container(rest.split(), the_proxy.project))
        elif kind == "extra":
            extra.append(rest.strip())
        elif kind == "problem":
            problems.append(rest.strip())
        else:
            raise ValueError(f"line {number}: unknown item {kind!r}")
    return the_proxy, containers, extra, problems


def parse_container(tokens: list[str], project: str) -> Container:
    name, options = tokens[0], tokens[1:]
    fields: dict[str, object] = {"project": project}
    networks: dict[str, str] = {}
    exposed: list[int] = []
    labels: dict[str, str] = {}
    for token in options:
        key, _, value = token.partition("=")
        if key == "ip":
            networks[NETWORK] = value
        elif key == "net":
            network, _, address = value.partition(":")
            networks[network] = address
        elif key == "expose":
            exposed.append(int(value))
        elif key == "label":
            label, _, label_value = value.partition("=")
            labels[label] = label_value
        elif key in ("service", "project", "number", "oneoff", "state", "health"):
            fields[key] = value
        else:
            raise ValueError(f"container {name}: unknown key {key!r}")
    return container(name, networks=networks, exposed=exposed, labels=labels, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    the_proxy, containers, extra, problems = parse_case((GOLDEN / f"{case}.in").read_text())
    built = model.build(containers, the_proxy, extra)
    rendered = render.render_all(render.find_templates([BUILTIN_TEMPLATES]), built, Settings())
    assert rendered.errors == {}
    assert list(built.problems) == problems
    assert rendered.outputs[BUILTIN_NAME] == (GOLDEN / f"{case}.conf").read_text()


def test_every_golden_file_has_its_input() -> None:
    assert len(CASES) >= 5
    assert sorted(path.stem for path in GOLDEN.glob("*.conf")) == CASES
