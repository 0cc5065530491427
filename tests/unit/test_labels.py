"""labels: the validators that stand between label text and nginx config."""

from __future__ import annotations

import string

import pytest
from dynamic_nginx import labels as L
from hypothesis import given, settings
from hypothesis import strategies as st

PORT_LABEL = "dynamic-nginx.port"
LONGEST_WORD = "a" * 63


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("web", id="plain word"),
        pytest.param("Web", id="upper case (folded later, not rejected)"),
        pytest.param("web-1", id="hyphen"),
        pytest.param("web_1", id="underscore"),
        pytest.param("0web", id="leading digit"),
        pytest.param("w", id="one character"),
        pytest.param("api.v2.upstream", id="dotted words"),
        pytest.param(LONGEST_WORD, id="63-character word"),
        pytest.param(".".join(["a"] * 8), id="eight dotted words"),
    ],
)
def test_is_name_accepts(value: str) -> None:
    assert L.is_name(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("-web", id="leading hyphen"),
        pytest.param("_web", id="leading underscore"),
        pytest.param(".web", id="leading dot"),
        pytest.param("web.", id="trailing dot"),
        pytest.param("web..api", id="empty word between dots"),
        pytest.param("we b", id="space"),
        pytest.param("web\t", id="tab"),
        pytest.param("web\n", id="trailing newline"),
        pytest.param("web;", id="semicolon"),
        pytest.param("web{", id="opening brace"),
        pytest.param("web}", id="closing brace"),
        pytest.param("'web'", id="single quotes"),
        pytest.param('"web"', id="double quotes"),
        pytest.param("$web", id="nginx variable sigil"),
        pytest.param("web#x", id="comment sign"),
        pytest.param("web:80", id="port suffix"),
        pytest.param("web/x", id="slash"),
        pytest.param("wéb", id="accented letter"),
        pytest.param("ｗｅｂ", id="fullwidth letters"),
        pytest.param("١٢٣", id="unicode digits"),
        pytest.param("a" * 64, id="64-character word"),
        pytest.param(".".join(["a"] * 9), id="nine dotted words"),
        pytest.param(".".join([LONGEST_WORD] * 4), id="longer than 200 characters"),
    ],
)
def test_is_name_rejects(value: str) -> None:
    assert not L.is_name(value)


@settings(database=None, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "._- ;{}'\"\n\t$#:/é١", max_size=40))
def test_a_name_never_carries_a_character_that_could_break_out(value: str) -> None:
    if L.is_name(value):
        assert set(value) <= set(string.ascii_letters + string.digits + "._-")
        assert value[0].isalnum() and value[-1] not in ".", value


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        pytest.param("web", "web.upstream", id="suffix added"),
        pytest.param("Web-API", "web-api.upstream", id="lower-cased"),
    ],
)
def test_upstream_name(service: str, expected: str) -> None:
    assert L.upstream_name(service) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("1", 1, id="lowest port"),
        pytest.param("80", 80, id="http"),
        pytest.param("8080", 8080, id="four digits"),
        pytest.param("65535", 65535, id="highest port"),
    ],
)
def test_parse_port_accepts(value: str, expected: int) -> None:
    assert L.parse_port("shop-web-1", PORT_LABEL, value) == expected


BAD_PORTS = [
    pytest.param("", id="empty"),
    pytest.param("0", id="zero"),
    pytest.param("65536", id="one past the highest"),
    pytest.param("99999999999999999999", id="huge number"),
    pytest.param("-80", id="negative"),
    pytest.param("+80", id="plus sign"),
    pytest.param("80;", id="semicolon"),
    pytest.param("80}", id="brace"),
    pytest.param("8 0", id="inner space"),
    pytest.param(" 80", id="leading space"),
    pytest.param("80\n", id="trailing newline"),
    pytest.param("0x50", id="hexadecimal"),
    pytest.param("80.0", id="decimal point"),
    pytest.param("١٢٣", id="arabic-indic digits"),
    pytest.param("８０", id="fullwidth digits"),
    pytest.param("²", id="superscript digit"),
    pytest.param("http", id="service name"),
]


@pytest.mark.parametrize("value", BAD_PORTS)
def test_parse_port_rejects(value: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        L.parse_port("shop-web-1", PORT_LABEL, value)
    message = str(raised.value)
    assert "container shop-web-1" in message
    assert f"label {PORT_LABEL}={value!r}" in message
    assert "a port number from 1 to 65535" in message
    assert "\n" not in message
    assert (raised.value.container, raised.value.label) == ("shop-web-1", PORT_LABEL)


@settings(database=None, deadline=None)
@given(st.text(max_size=8) | st.integers(min_value=-10, max_value=100_000).map(str))
def test_parse_port_returns_a_valid_port_or_raises(value: str) -> None:
    try:
        port = L.parse_port("c", PORT_LABEL, value)
    except L.LabelError:
        return
    assert 1 <= port <= 65535
    assert value.isascii() and value.isdigit()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("x" * 80, repr("x" * 80), id="80 characters are shown whole"),
        pytest.param("x" * 81, repr("x" * 77 + "..."), id="longer values are cut to 80"),
        pytest.param("a\nb", "'a\\nb'", id="newline shown escaped, message stays one line"),
    ],
)
def test_label_error_shows_the_value_safely(value: str, shown: str) -> None:
    error = L.LabelError("shop-web-1", "dynamic-nginx.weight", value, "1 to 100")
    assert str(error) == (
        f"container shop-web-1: label dynamic-nginx.weight={shown} is invalid; "
        "allowed: 1 to 100. Fix the label; this container is left out."
    )
