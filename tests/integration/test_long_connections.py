"""Long-lived connections outlive membership changes; old worker generations stay bounded.

A long request, an SSE stream and a WebSocket go through the proxy to one
replica of `web`, which is never scaled away, while `web` and `other` are
scaled up and down 20 times: each change reloads nginx, and the connections
stay on the worker generation that accepted them until they end.
"""

from __future__ import annotations

import time

from harness import PROXY, WEB, get, record, wait_for
from longlived import GENERATION, SITE, in_thread, long_request, old_generations, start_all

COMPOSE = (
    PROXY
    + WEB
    + """  other:
    image: {backend}
"""
)
HOLD = 150  # seconds each connection lasts: more than the 2 minutes the events take
EVENTS = 20
EVENT_EVERY = 6.0  # seconds between scale events, so that they span 2 minutes


def test_a_long_request_an_sse_stream_and_a_websocket_outlive_20_scale_events(project):
    p = project(COMPOSE, {"conf.d/default.conf": SITE})
    p.up(web=1, other=1)
    [held] = p.ids("web")
    p.wait_serving([held])
    reloads_before = p.reloads()
    results, threads = start_all(p, HOLD)
    time.sleep(2)  # all three are through to `held` before membership changes
    started = time.monotonic()
    for event in range(EVENTS):
        # Alternate: web 1 -> 2 and back (its second replica goes, `held` stays), other likewise.
        service = "web" if event % 2 == 0 else "other"
        p.up(**{service: 2 if event % 4 < 2 else 1})
        time.sleep(max(0.0, started + (event + 1) * EVENT_EVERY - time.monotonic()))
    events_took = time.monotonic() - started
    generations_after = old_generations(p)
    for thread in threads:
        thread.join(HOLD + 90)
    reloads = p.reloads() - reloads_before
    logs = p.logs()
    reports = [tuple(map(float, m)) for m in GENERATION.findall(logs)]
    record("long connections: seconds of scale events", round(events_took, 1))
    record("long connections: reloads while held", reloads)
    record("long connections: old generations after the events", generations_after)
    record("long connections: largest report (generations, workers, MiB)", max(reports, default=None))

    assert events_took >= 120 and reloads >= EVENTS, (events_took, reloads)
    assert results["long request"].get("status") == 200, results["long request"]
    assert results["long request"].get("bytes") == HOLD * 1000, results["long request"]
    assert results["sse"].get("status") == 200, results["sse"]
    assert results["sse"].get("ticks") == [f"tick {n}" for n in range(1, HOLD + 1)], results["sse"]
    assert results["websocket"].get("status") == 101, results["websocket"]
    assert results["websocket"].get("ticks") == [f"tick {n}" for n in range(1, HOLD + 1)], results["websocket"]
    assert results["websocket"].get("closed") is True, results["websocket"]
    # The connections kept the first generation alive throughout; reloads without them left nothing behind.
    assert 1 <= generations_after <= 10, generations_after
    assert reports and all(g <= 10 for g, _, _ in reports), reports
    assert get(p.port)[0] == 200


def test_the_oldest_generation_beyond_the_bound_is_ended_with_one_line(project):
    compose = COMPOSE.replace(
        "    volumes:\n", "    environment:\n      DYNAMIC_NGINX_MAX_OLD_GENERATIONS: 1\n    volumes:\n", 1
    )
    p = project(compose, {"conf.d/default.conf": SITE})
    p.up(web=1, other=1)
    p.wait_serving(p.ids("web"))
    first: dict[str, dict[str, object]] = {}
    second: dict[str, dict[str, object]] = {}
    one = in_thread(first, "long request", lambda: long_request(p.port, 60))
    time.sleep(2)
    p.up(other=2)  # a reload: `first` now holds an old generation
    wait_for(lambda: old_generations(p) >= 1, 15, "the first old generation")
    two = in_thread(second, "long request", lambda: long_request(p.port, 30))
    time.sleep(2)
    p.up(other=1)  # a second reload: two old generations, one more than the bound
    one.join(20)  # the bound ends the oldest within seconds, long before its 60 s
    logs = wait_for(lambda: "ended the oldest worker generation" in p.logs() and p.logs(), 10, "the line")
    ended = [line for line in logs.splitlines() if "ended the oldest worker generation" in line]
    assert first.get("long request", {}).get("status") != 200, first
    assert len(ended) == 1, ended
    record("long connections: the bound's line", ended[0])
    assert "since 2 old generations were live and DYNAMIC_NGINX_MAX_OLD_GENERATIONS=1" in ended[0]
    assert "reloader: WARNING:" in ended[0]
    two.join(45)
    assert second.get("long request", {}).get("status") == 200, second  # the younger one was spared
    assert second["long request"]["bytes"] == 30 * 1000
