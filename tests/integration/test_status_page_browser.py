"""The status page in a real headless browser (Debian's chromium): what the page
shows, read from the DOM chromium built (--dump-dom), not from pixels; and a
screenshot it can take (bench/README and docs use the demo's)."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from harness import SITE, Project, free_port, rendered_servers, wait_for
from test_status import STATUS_PORT_IN_CONTAINER, listed, with_status

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Root in a container has no user namespace for chromium's sandbox; the page is ours.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,900"]


def chromium(*args: str, timeout: float = 90) -> str:
    if CHROMIUM is None:
        pytest.fail("chromium is missing: apt-get install chromium (scripts/test installs it)")
    result = subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Cells(HTMLParser):
    """The page's table rows as lists of cell texts, and every element's classes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.classes: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.classes += [c for name, value in attrs if name == "class" for c in (value or "").split()]
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_page_in_chromium_shows_members_states_and_a_refused_reload(project, tmp_path: Path):
    status_port = free_port()
    p: Project = project(
        with_status(status_port, str(STATUS_PORT_IN_CONTAINER)),
        {"conf.d/default.conf": SITE.format(upstream="web.upstream")},
    )
    p.up(web=2)
    p.wait_serving(p.ids("web"))
    p.up(web=3)  # a reload that succeeds
    three = p.ids("web")
    p.wait_serving(three)
    wait_for(lambda: listed(status_port) == set(three), 30, "status.json to list three replicas")
    (p.folder / "conf.d" / "broken.conf").write_text("sever { }\n")
    wait_for(lambda: "invalid" in p.exec("dynamic-nginx", "status").stdout, 30, "the refused reload to show")

    url = f"http://127.0.0.1:{status_port}/"
    dom = chromium("--dump-dom", url)
    page = Cells()
    page.feed(dom)
    members = [row for row in page.rows if len(row) == 5 and row[0].startswith(p.name)]
    assert len(members) == 3, page.rows
    assert all(row[1] == "active" for row in members), members
    addresses = {row[2].split()[0] for row in members}
    assert addresses == set(rendered_servers(p)), members  # the `server` lines nginx runs
    assert page.classes.count("state-active") == 3
    reloads = [row for row in page.rows if len(row) == 4 and row[1] in ("ok", "invalid", "failed")]
    assert reloads[0][1] == "invalid" and 'unknown directive "sever"' in reloads[0][3], reloads
    assert any(row[1] == "ok" for row in reloads), reloads
    assert "web.upstream" in dom and "connected" in dom

    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
