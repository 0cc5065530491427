"""An upstream whose member objects are unchanged is combined once, not at every sync.

The Docker edge hands out the same Container object while Docker shows a
container unchanged, and `members_of` keeps its members with it, so the
model remembers each upstream's combined block by the identity of its
members. Every case here builds twice and checks the second model against
one built from fresh objects with nothing remembered.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dynamic_nginx import model
from dynamic_nginx.model import Container, Model
from support import container, proxy

LB_HASH = {"dynamic-nginx.lb": "hash $remote_addr"}


def web(n: int, **kw: object) -> Container:
    return container(f"shop-web-{n}", number=n, ip=f"172.18.0.{10 + n}", exposed=(80,), **kw)  # type: ignore[arg-type]


def api(n: int, **kw: object) -> Container:
    return container(f"shop-api-{n}", service="api", number=n, ip=f"172.18.1.{10 + n}", exposed=(80,), **kw)  # type: ignore[arg-type]


def fresh(make: Callable[[], list[Container]], **kw: object) -> Model:
    """The model from new objects, with nothing remembered: what every build must equal."""
    model._COMBINED.clear()
    return model.build(make(), proxy(), **kw)  # type: ignore[arg-type]


def same_model(a: Model, b: Model) -> bool:
    return (a.upstreams, a.problems, a.warnings, a.excluded) == (b.upstreams, b.problems, b.warnings, b.excluded)


# (case, the first list, the second list made from the first's objects, build options of the second)
CASES = [
    pytest.param(lambda: [web(1), web(2), api(1)], lambda c: c, {}, id="nothing changed"),
    pytest.param(lambda: [web(1), web(2), api(1)], lambda c: c + [web(3)], {}, id="a replica added"),
    pytest.param(lambda: [web(1), web(2), api(1)], lambda c: c[1:], {}, id="a replica gone"),
    pytest.param(lambda: [web(1), web(2), api(1)], lambda c: c, {"leaving": {web(2).id}}, id="a replica leaving"),
    pytest.param(
        lambda: [web(1, labels=LB_HASH), web(2), api(1)], lambda c: c, {}, id="replicas disagree: the warning stays"
    ),
    pytest.param(
        lambda: [web(1, labels=LB_HASH), web(2, labels=LB_HASH | {"dynamic-nginx.backup": "true"})],
        lambda c: c,
        {},
        id="backup with hash: the problem stays",
    ),
    pytest.param(lambda: [web(1), api(1)], lambda c: c[:1], {}, id="an upstream gone"),
]


@pytest.mark.parametrize(("first", "then", "options"), CASES)
def test_the_second_build_equals_one_from_scratch(
    first: Callable[[], list[Container]], then: Callable[[list[Container]], list[Container]], options: dict[str, object]
) -> None:
    listed = first()
    model.build(listed, proxy())
    second = model.build(then(listed), proxy(), **options)  # type: ignore[arg-type]
    assert same_model(second, fresh(lambda: then(first()), **options))
    assert set(model._COMBINED) <= {u.name for u in second.upstreams}


def test_an_unchanged_upstream_is_the_same_object_and_a_changed_one_is_new() -> None:
    listed = [web(1), web(2), api(1)]
    before = {u.name: u for u in model.build(listed, proxy()).upstreams}
    after = {u.name: u for u in model.build(listed + [web(3)], proxy()).upstreams}
    assert after["api.upstream"] is before["api.upstream"]
    assert after["web.upstream"] is not before["web.upstream"]
    assert [s.container.name for s in after["web.upstream"].servers] == ["shop-web-1", "shop-web-2", "shop-web-3"]


def test_an_equal_container_from_a_new_inspect_is_combined_again() -> None:
    """Identity, not equality: a re-inspected container is a new object, and its upstream
    is worked out again (from the new object's own members)."""
    first = model.build([web(1), api(1)], proxy())
    again = model.build([web(1), api(1)], proxy())
    assert again.upstreams == first.upstreams
    assert all(a is not b for a, b in zip(again.upstreams, first.upstreams, strict=True))


def test_references_follow_the_text_and_not_a_stale_answer() -> None:
    """The user's files are scanned once per text: an edit (even one of the same length) is scanned again."""
    a = "location / { proxy_pass http://aaa.upstream; }"
    b = "location / { proxy_pass http://bbb.upstream; }"
    assert len(a) == len(b)
    assert model.referenced_upstreams([a]) == {"aaa.upstream"}
    assert model.referenced_upstreams([b]) == {"bbb.upstream"}
    assert model.referenced_upstreams([a, b]) == {"aaa.upstream", "bbb.upstream"}
    many = [f"proxy_pass http://n{i}.upstream;" for i in range(model.REFERENCES_KEPT * 2)]
    for i, text in enumerate(many):  # past the bound the answers are worked out again, still right
        assert model.referenced_upstreams([text]) == {f"n{i}.upstream"}
    assert len(model._REFERENCES) <= model.REFERENCES_KEPT
    assert model.referenced_upstreams([a]) == {"aaa.upstream"}
