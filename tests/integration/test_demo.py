"""The README's first command: the demo compose file, as a newcomer runs it."""

from __future__ import annotations

from harness import ROOT, tally


def test_demo_scales_to_three_replicas(project):
    demo = project(str(ROOT / "docker-compose.yml"), port=8080)
    demo.up(build=True, web=3)
    replicas = demo.ids("web")
    assert len(replicas) == 3
    demo.wait_serving(replicas)
    counts = tally(demo.port, 90)
    assert set(counts) == set(replicas) and min(counts.values()) >= 20, counts
