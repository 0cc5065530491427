"""Fixtures: the images are built once per run; every project is torn down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import BACKEND_IMAGE, IMAGE, ROOT, Project, run


def _image_present(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


@pytest.fixture(scope="session")
def images() -> None:
    """Build the proxy and backend images unless the test script already did."""
    if not _image_present(IMAGE):
        run(["docker", "build", "--network", "host", "-t", IMAGE, str(ROOT)], timeout=900)
    if not _image_present(BACKEND_IMAGE):
        run(["docker", "build", "--network", "host", "-t", BACKEND_IMAGE, str(ROOT / "demo" / "backend")], timeout=900)


@pytest.fixture
def project(images: None, tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """Make compose projects for this test; all are brought down afterwards, even on failure."""
    made: list[Project] = []

    def make(compose_file: str, files: dict[str, str] | None = None, port: int | None = None) -> Project:
        made.append(Project(tmp_path / f"p{len(made)}", compose_file, files, port))
        return made[-1]

    yield make
    for each in made:
        each.down()
