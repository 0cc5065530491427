"""The README and the pages it leads to stay navigable: every relative link
resolves (to a file, and to a heading when it names one), the README stays
short, and prose names test files, never test functions, which get renamed.

No Docker needed: this reads the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
TEST_FUNCTION = re.compile(r"\btest_[a-z0-9_]+\b(?!\.py)")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to dashes."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(FENCE.sub("", page.read_text())) if "://" not in target]


def test_every_page_is_there() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {
        "README.md",
        "bench/README.md",
        "docs/environment.md",
        "docs/templates.md",
        "docs/migration.md",
        "docs/design.md",
        "docs/operations.md",
        "docs/labels.md",
    } <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    found = links(page)
    for target in found:
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor:
            assert file.suffix == ".md", target
            assert anchor in anchors(file), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def test_the_readme_links_to_every_page() -> None:
    targets = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    assert {p.resolve() for p in PAGES[1:]} <= targets, "a page no link from the README reaches"


def test_the_readme_stays_short() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 200, f"README.md has {lines} lines: move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_test_function_names(page: Path) -> None:
    named = TEST_FUNCTION.findall(page.read_text())
    assert not named, f"{page.relative_to(ROOT)} names test functions (name the file instead): {named}"
