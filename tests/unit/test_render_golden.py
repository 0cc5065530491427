"""Golden files: containers described in golden/NAME.in render to exactly golden/NAME.conf.

A new behaviour is a new pair of files. The `.in` format, one item per line
(`#` starts a comment line):

    proxy project=shop networks=shop_default,shop_back [scope=all]
    container NAME key=value ...    keys: service project number oneoff ip net=NETWORK:IP
                                    expose=PORT label=KEY=VALUE state health created (net,
                                    expose and label may repeat; ip=X is net=shop_default:X);
                                    the word `plain` drops every compose label (`docker run`)
    extra NAME.upstream             an upstream the user's config refers to
    problem TEXT                    a line model.build must report, in order
    warning TEXT                    a warning model.build must give, in order

Container lines are split like a shell would, so a value with spaces is
quoted: `"label=dynamic-nginx.lb=hash $request_uri consistent"`.

The built-in template renders with the image's default settings; its 503
server listens on 127.0.0.1:29503 in every expected file.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from pathlib import Path

import pytest
from dynamic_nginx import model, render
from dynamic_nginx.model import Container, Proxy
from dynamic_nginx.settings import Settings
from support import BUILTIN_NAME, BUILTIN_TEMPLATES, NETWORK, container, needs_nginx, nginx_command, proxy

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(path.stem for path in GOLDEN.glob("*.in"))


@dataclasses.dataclass
class Case:
    """What an .in file describes: the input of model.build and the lines it must report."""

    proxy: Proxy
    containers: list[Container]
    extra: list[str]
    problems: list[str]
    warnings: list[str]
    scope: str = "project"


def parse_case(text: str) -> Case:
    """The proxy, containers, extra upstream names, scope and expected problems and warnings of an .in file."""
    case = Case(proxy(), [], [], [], [])
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        kind, _, rest = line.partition(" ")
        if kind == "proxy":
            fields = dict(token.split("=", 1) for token in rest.split())
            case.proxy = proxy(project=fields["project"], networks=fields["networks"].split(","))
            case.scope = fields.get("scope", case.scope)
        elif kind == "container":
            case.containers.append(parse_container(shlex.split(rest), case.proxy.project))
        elif kind == "extra":
            case.extra.append(rest.strip())
        elif kind == "problem":
            case.problems.append(rest.strip())
        elif kind == "warning":
            case.warnings.append(rest.strip())
        else:
            raise ValueError(f"line {number}: unknown item {kind!r}")
    return case


def parse_container(tokens: list[str], project: str) -> Container:
    name, options = tokens[0], tokens[1:]
    fields: dict[str, object] = {"project": project}
    networks: dict[str, str] = {}
    exposed: list[int] = []
    labels: dict[str, str] = {}
    for token in options:
        key, _, value = token.partition("=")
        if token == "plain":
            fields.update(service=None, project=None, number=None, oneoff=None)
        elif key == "ip":
            networks[NETWORK] = value
        elif key == "net":
            network, _, address = value.partition(":")
            networks[network] = address
        elif key == "expose":
            exposed.append(int(value))
        elif key == "label":
            label, _, label_value = value.partition("=")
            labels[label] = label_value
        elif key in ("service", "project", "number", "oneoff", "state", "health", "created"):
            fields[key] = value
        else:
            raise ValueError(f"container {name}: unknown key {key!r}")
    return container(name, networks=networks, exposed=exposed, labels=labels, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    given = parse_case((GOLDEN / f"{case}.in").read_text())
    built = model.build(given.containers, given.proxy, given.extra, given.scope)
    rendered = render.render_all(render.find_templates([BUILTIN_TEMPLATES]), built, Settings())
    assert rendered.errors == {}
    assert list(built.problems) == given.problems
    assert list(built.warnings) == given.warnings
    assert rendered.outputs[BUILTIN_NAME] == (GOLDEN / f"{case}.conf").read_text()


def test_every_golden_file_has_its_input() -> None:
    assert len(CASES) >= 5
    assert sorted(path.stem for path in GOLDEN.glob("*.conf")) == CASES


@needs_nginx
@pytest.mark.parametrize("case", CASES)
def test_nginx_accepts_every_golden_file(case: str, tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf.d"
    conf_dir.mkdir()
    text = (GOLDEN / f"{case}.conf").read_text()
    (conf_dir / BUILTIN_NAME).write_text(text)
    result = subprocess.run(
        nginx_command(tmp_path, conf_dir) + ["-t", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
