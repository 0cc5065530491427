"""User files in conf.d are sacred: a generated file copied to pin it is never removed."""

from __future__ import annotations

import shutil

from harness import PROXY, SITE, WEB, get, wait_for

NOTICE = "pinned.conf starts with the dynamic-nginx marker but dynamic-nginx did not write it"


def test_a_pinned_copy_of_the_generated_file_stays_and_is_reported_once(project) -> None:
    p = project(PROXY + WEB, {"conf.d/default.conf": SITE.format(upstream="web.upstream")})
    p.up(web=1)
    p.wait_serving(p.ids("web"))
    conf = p.folder / "conf.d"
    shutil.copy(conf / "dynamic-nginx-upstreams.conf", conf / "pinned.conf")

    p.up(web=2)  # a render, which used to remove the copy
    wait_for(lambda: NOTICE in p.logs(), 30, "the copy to be reported")
    p.up(web=3)  # another render: not reported again
    wait_for(lambda: (conf / "dynamic-nginx-upstreams.conf").read_text().count("  # ") == 3, 30, "3 replicas")

    assert (conf / "pinned.conf").exists()
    assert p.logs().count(NOTICE) == 1
    assert "removed pinned.conf" not in p.logs()
    # nginx -t fails on the duplicate upstream, so nginx keeps serving what it had.
    assert 'duplicate upstream "web.upstream"' in p.logs()
    assert get(p.port)[0] == 200
