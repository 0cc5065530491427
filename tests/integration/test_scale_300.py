"""One service at 300 replicas: every replica is served (issue 11, item 1).

Before zones were sized from their servers, every upstream had `zone 64k`;
`nginx -t` failed from 71 servers on and nginx stayed on an old configuration,
serving a fraction of the replicas. Round robin over N servers sends N
consecutive requests to N distinct replicas, so once all are in, a bounded
window of requests names every one of them.
"""

from __future__ import annotations

import time

from harness import PROXY, SITE, WEB, record, rendered_servers, tally, wait_for

REPLICAS = 300


def test_300_replicas_of_one_service_are_all_served(project):
    p = project(PROXY + WEB, {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    started = time.monotonic()
    p.up(web=REPLICAS)
    up = time.monotonic() - started
    ids = set(p.ids("web"))
    assert len(ids) == REPLICAS, f"compose started {len(ids)} replicas"
    wait_for(lambda: len(rendered_servers(p)) == REPLICAS, 300, f"{REPLICAS} server lines rendered")
    text = (p.folder / "conf.d" / "dynamic-nginx-upstreams.conf").read_text()
    assert "zone web.upstream 512k;" in text

    seen: set[str] = set()

    def all_served() -> bool:
        seen.update(k for k in tally(p.port, 2 * REPLICAS) if not k.startswith("status:"))
        return seen >= ids

    # Bounded: at most 120 s of windows of 600 sequential requests.
    wait_for(all_served, 120, f"all {REPLICAS} replicas to answer", interval=0.5)
    served = time.monotonic() - started
    # Once all are in, round robin: REPLICAS consecutive requests reach REPLICAS distinct replicas.
    window = tally(p.port, REPLICAS)
    assert set(window) == ids, (
        f"{len(set(window) & ids)} of {REPLICAS} in one window; other answers: "
        f"{ {k: v for k, v in window.items() if k not in ids} }"
    )
    logs = p.logs()
    assert "ngx_slab_alloc" not in logs and "nginx -t failed" not in logs, logs[-2000:]
    record(f"scale 0->{REPLICAS}: seconds for `up --scale` itself", round(up, 1))
    record(f"scale 0->{REPLICAS}: seconds from `up` start to every replica served", round(served, 1))
