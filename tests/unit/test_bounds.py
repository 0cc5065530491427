"""No ratchet and hard bounds: upstreams exist while something needs them, and never beyond the caps."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamic_nginx import labels as L
from dynamic_nginx import model
from dynamic_nginx.marker import MARKER
from dynamic_nginx.rebuild import config_texts
from support import container, proxy

GENERATED = f"{MARKER}\nupstream gone.upstream {{\n    server 127.0.0.1:65535 down;\n}}\n"
USER = "server {\n    location / { proxy_pass http://kept.upstream; }\n}\n"


def scan(folder: Path) -> set[str]:
    return model.referenced_upstreams(config_texts([folder]) + config_texts([folder / "templates"], "*.j2"))


def test_generated_files_are_not_references_but_user_files_and_templates_are(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "conf.d" / "dynamic-nginx-upstreams.conf").write_text(GENERATED)
    (tmp_path / "conf.d" / "pinned-copy.conf").write_text(GENERATED.replace("gone", "copied"))
    (tmp_path / "conf.d" / "site.conf").write_text(USER)
    (tmp_path / "templates" / "site.conf.j2").write_text("proxy_pass http://templated.upstream;\n")
    assert scan(tmp_path) == {"kept.upstream", "templated.upstream"}


def test_an_upstream_whose_last_reference_went_away_disappears(tmp_path: Path) -> None:
    """The ratchet gone: what was served once is not kept because our own file still names it."""
    (tmp_path / "dynamic-nginx-upstreams.conf").write_text(GENERATED)
    served = model.build([container("shop-gone-1", service="gone")], proxy(), scan(tmp_path))
    assert [u.name for u in served.upstreams] == ["gone.upstream"]
    after = model.build([], proxy(), scan(tmp_path))
    assert after.upstreams == ()
    (tmp_path / "site.conf").write_text(USER.replace("kept", "gone"))
    assert [(u.name, u.servers) for u in model.build([], proxy(), scan(tmp_path)).upstreams] == [("gone.upstream", ())]


def named(count: int) -> dict[str, str]:
    return {f"dynamic-nginx.u{i:05d}.port": "80" for i in range(count)}


def test_up_to_the_per_container_cap_is_served() -> None:
    built = model.build([container(labels=named(L.MAX_UPSTREAMS_PER_CONTAINER))], proxy())
    assert len(built.upstreams) == L.MAX_UPSTREAMS_PER_CONTAINER and built.problems == ()


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        pytest.param(
            named(L.MAX_UPSTREAMS_PER_CONTAINER + 1),
            f"put it into {L.MAX_UPSTREAMS_PER_CONTAINER + 1} upstreams, more than the "
            f"{L.MAX_UPSTREAMS_PER_CONTAINER} allowed per container",
            id="one upstream too many",
        ),
        pytest.param(named(20_000), "dynamic-nginx.* labels, more than the", id="the issue's 20,000 labels"),
        pytest.param(
            {"dynamic-nginx.weight": "1" * (L.MAX_VALUE + 1)},
            f"at most {L.MAX_VALUE} characters",
            id="a label value too long",
        ),
    ],
)
def test_a_container_over_a_cap_is_left_out_with_one_line(labels: dict[str, str], says: str) -> None:
    built = model.build([container(labels=labels)], proxy())
    # Left out whole, its own service's upstream kept at 503, and one line saying which cap and the fix.
    assert [(u.name, u.servers) for u in built.upstreams] == [("web.upstream", ())]
    (line,) = built.problems
    assert line.startswith("container shop-web-1: ") and says in line and "left out" in line


def test_upstreams_in_total_are_capped_referenced_and_served_first() -> None:
    over = model.MAX_UPSTREAMS + 5
    services = [container(f"shop-s{i:04d}-1", service=f"s{i:04d}", ip="172.18.0.2") for i in range(over)]
    referenced = [f"zz{i}.upstream" for i in range(3)]
    built = model.build(services, proxy(), referenced)
    names = [u.name for u in built.upstreams]
    assert len(names) == model.MAX_UPSTREAMS
    assert set(referenced) <= set(names)  # nginx refuses a config naming a missing upstream
    assert all(u.servers for u in built.upstreams if u.name not in referenced)
    (line,) = built.problems
    assert line.startswith(f"{over + 3} upstreams wanted, more than the {model.MAX_UPSTREAMS} served at most")
    assert "s0997.upstream" in line
