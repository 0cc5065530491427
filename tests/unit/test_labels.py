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


C = "shop-web-1"
# Hostile text no validator may let through: each would break out of an nginx
# directive, hide a second one, or only look like a number or a word.
HOSTILE = [
    pytest.param("", id="empty"),
    pytest.param(" ", id="a space"),
    pytest.param(";", id="semicolon"),
    pytest.param("{", id="opening brace"),
    pytest.param("}", id="closing brace"),
    pytest.param("'", id="single quote"),
    pytest.param('"', id="double quote"),
    pytest.param("\n", id="newline"),
    pytest.param("\t", id="tab"),
    pytest.param("$", id="dollar"),
    pytest.param("#", id="comment sign"),
    pytest.param("\\", id="backslash"),
    pytest.param("\x00", id="NUL"),
    pytest.param("١", id="arabic-indic digit"),
    pytest.param("５", id="fullwidth digit"),
    pytest.param("²", id="superscript digit"),
    pytest.param("ｏｎ", id="fullwidth letters"),
    pytest.param("é", id="accented letter"),
    pytest.param("1" * 257, id="257 digits"),
]


def hostile_around(valid: str) -> list[object]:
    """A valid value with hostile text before, after or inside it."""
    return [
        pytest.param(valid + ";", id="valid value then semicolon"),
        pytest.param(valid + "; server 6.6.6.6", id="valid value then a second directive"),
        pytest.param(valid + "}", id="valid value then closing brace"),
        pytest.param(valid + "\n", id="valid value then newline"),
        pytest.param(valid + "\r", id="valid value then carriage return"),
        pytest.param(" " + valid, id="leading space"),
        pytest.param(valid + " ", id="trailing space"),
        pytest.param("\t" + valid, id="leading tab"),
        pytest.param('"' + valid + '"', id="double-quoted"),
        pytest.param("'" + valid + "'", id="single-quoted"),
        pytest.param(valid + "#", id="valid value then comment sign"),
        pytest.param("$" + valid, id="dollar before"),
    ]


# The range of every whole-number option.
RANGES = {
    "weight": (1, 1000),
    "max_fails": (0, 1000),
    "max_conns": (0, 100000),
    "keepalive": (1, 10000),
    "keepalive_requests": (1, 1000000),
}


def parse(option: str, value: str) -> object:
    """What the parser of `dynamic-nginx.<option>` makes of value."""
    return L.MEMBER_PARSERS[option](C, L.LABEL_PREFIX + option, value)


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        pytest.param(option, value, expected, id=f"{option}: {why}")
        for option, (low, high) in RANGES.items()
        for why, value, expected in (
            ("lowest", str(low), low),
            ("highest", str(high), high),
            ("leading zeros", "00" + str(high), high),
        )
    ],
)
def test_numbers_accept(option: str, value: str, expected: int) -> None:
    assert parse(option, value) == expected


@pytest.mark.parametrize(
    ("option", "value"),
    [
        pytest.param(option, value, id=f"{option}: {why}")
        for option, (low, high) in RANGES.items()
        for why, value in (
            ("one below the lowest", str(low - 1)),
            ("one above the highest", str(high + 1)),
            ("10**30", str(10**30)),
            ("too many leading zeros", "0" * 10 + str(low)),
            ("negative", f"-{high}"),
            ("plus sign", f"+{high}"),
            ("decimal point", f"{high}.0"),
            ("exponent", "1e2"),
            ("underscore, which int() accepts", "1_0"),
            ("hexadecimal", "0x10"),
            ("inner space", "1 0"),
            ("fullwidth digits, which int() accepts", "１０"),
            ("arabic-indic digits, which int() accepts", "١٠"),
            ("a word", "ten"),
        )
    ],
)
def test_numbers_reject(option: str, value: str) -> None:
    low, high = RANGES[option]
    with pytest.raises(L.LabelError) as raised:
        parse(option, value)
    assert f"allowed: a whole number from {low} to {high}" in str(raised.value)


VALIDATED_OPTIONS = sorted(L.MEMBER_PARSERS) + ["network", "upstream"]
VALID_SAMPLE = {
    "port": "80",
    "weight": "5",
    "max_fails": "3",
    "fail_timeout": "30s",
    "max_conns": "100",
    "backup": "true",
    "down": "false",
    "lb": "least_conn",
    "keepalive": "16",
    "keepalive_timeout": "60s",
    "keepalive_requests": "1000",
    "network": "shop_back",
    "upstream": "pool",
}


@pytest.mark.parametrize("option", VALIDATED_OPTIONS)
@pytest.mark.parametrize("value", HOSTILE + hostile_around("1"))
def test_no_validator_lets_hostile_text_through(option: str, value: str) -> None:
    parser = L.MEMBER_PARSERS.get(option) or L.CONTAINER_PARSERS[option]
    label = L.LABEL_PREFIX + option
    with pytest.raises(L.LabelError) as raised:
        parser(C, label, value)
    message = str(raised.value)
    assert message.startswith(f"container {C}: label {label}=")
    assert "\n" not in message and "\r" not in message
    assert (raised.value.container, raised.value.label) == (C, label)


@pytest.mark.parametrize("option", VALIDATED_OPTIONS)
def test_hostile_text_around_a_valid_value_is_rejected(option: str) -> None:
    parser = L.MEMBER_PARSERS.get(option) or L.CONTAINER_PARSERS[option]
    valid = VALID_SAMPLE[option]
    parser(C, L.LABEL_PREFIX + option, valid)
    for param in hostile_around(valid):
        (value,) = param.values  # type: ignore[attr-defined]
        with pytest.raises(L.LabelError):
            parser(C, L.LABEL_PREFIX + option, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *(pytest.param(word, True, id=word) for word in ("true", "yes", "1", "on", "TRUE", "Yes", "On")),
        *(pytest.param(word, False, id=word) for word in ("false", "no", "0", "off", "FALSE", "No", "OFF")),
    ],
)
def test_parse_bool_accepts(value: str, expected: bool) -> None:
    assert L.parse_bool(C, "dynamic-nginx.backup", value) is expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("t", id="t"),
        pytest.param("y", id="y"),
        pytest.param("2", id="2"),
        pytest.param("01", id="01"),
        pytest.param("enabled", id="enabled"),
        pytest.param("true\n", id="trailing newline"),
        pytest.param(" true", id="leading space"),
        pytest.param("ｔｒｕｅ", id="fullwidth letters"),
        pytest.param("١", id="arabic-indic one"),
        pytest.param("yes;", id="semicolon"),
    ],
)
def test_parse_bool_rejects(value: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        L.parse_bool(C, "dynamic-nginx.backup", value)
    assert "allowed: true or false" in str(raised.value)


@pytest.mark.parametrize("option", ["fail_timeout", "keepalive_timeout"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0", id="zero"),
        pytest.param("10", id="plain number"),
        pytest.param("000010", id="leading zeros"),
        pytest.param("999999", id="six digits"),
        pytest.param("30s", id="seconds"),
        pytest.param("1m", id="minutes"),
        pytest.param("2h", id="hours"),
        pytest.param("1d", id="days"),
        pytest.param("1h30m", id="hours and minutes"),
        pytest.param("1d2h3m4s", id="every unit down to seconds, in order"),
        pytest.param("999999d999999h999999m999999s", id="largest accepted"),
    ],
)
def test_parse_time_accepts(option: str, value: str) -> None:
    assert parse(option, value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("500ms", id="milliseconds"),
        pytest.param("1s500ms", id="seconds and milliseconds"),
        pytest.param("1d1h1m1s1ms", id="every unit, in order"),
    ],
)
def test_keepalive_timeout_takes_milliseconds(value: str) -> None:
    assert parse("keepalive_timeout", value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("500ms", id="milliseconds"),
        pytest.param("1s500ms", id="seconds and milliseconds"),
    ],
)
def test_fail_timeout_takes_no_milliseconds(value: str) -> None:
    # nginx parses fail_timeout in whole seconds: "invalid parameter fail_timeout=500ms".
    with pytest.raises(L.LabelError) as raised:
        parse("fail_timeout", value)
    assert "fail_timeout" in str(raised.value)


@pytest.mark.parametrize("option", ["fail_timeout", "keepalive_timeout"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1000000", id="seven digits"),
        pytest.param("1000000s", id="seven digits with a unit"),
        pytest.param("s", id="unit without number"),
        pytest.param("1S", id="upper-case unit"),
        pytest.param("1w", id="weeks (not offered)"),
        pytest.param("1y", id="years (not offered)"),
        pytest.param("1M", id="months (not offered)"),
        pytest.param("1.5s", id="fraction"),
        pytest.param("-1s", id="negative"),
        pytest.param("1 s", id="space before the unit"),
        pytest.param("1h 30m", id="space between parts, which nginx would read as a second argument"),
        pytest.param("1m1m", id="a unit twice (nginx rejects it)"),
        pytest.param("1s1m", id="units out of order (nginx rejects it)"),
        pytest.param("1m1h", id="minutes before hours"),
        pytest.param("500ms1s", id="milliseconds before seconds"),
        pytest.param("1d1h1m1s1d", id="five parts"),
        pytest.param("１s", id="fullwidth digit"),
        pytest.param("$t", id="variable"),
    ],
)
def test_parse_time_rejects(option: str, value: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        parse(option, value)
    assert "allowed: an nginx time" in str(raised.value)


@pytest.mark.parametrize(
    ("value", "directive"),
    [
        pytest.param("round_robin", "", id="round_robin is nginx's default: no directive"),
        pytest.param("least_conn", "least_conn", id="least_conn"),
        pytest.param("ip_hash", "ip_hash", id="ip_hash"),
        pytest.param("random", "random", id="random"),
        pytest.param("random two", "random two", id="random two"),
        pytest.param("random two least_conn", "random two least_conn", id="random two least_conn"),
        pytest.param("hash $request_uri", "hash $request_uri", id="hash on a variable"),
        pytest.param("hash $request_uri consistent", "hash $request_uri consistent", id="consistent hash"),
        pytest.param("hash $remote_addr", "hash $remote_addr", id="client address"),
        pytest.param("hash $binary_remote_addr", "hash $binary_remote_addr", id="binary client address"),
        pytest.param("hash $hostname", "hash $hostname", id="a name that starts like another ($host)"),
        pytest.param("hash $http_x_user consistent", "hash $http_x_user consistent", id="request header"),
        pytest.param("hash $cookie_session", "hash $cookie_session", id="cookie"),
        pytest.param("hash $arg_id", "hash $arg_id", id="query argument"),
        pytest.param("hash $scheme$host$uri", "hash $scheme$host$uri", id="several variables"),
        pytest.param("hash $host:$server_port/x", "hash $host:$server_port/x", id="variables and text"),
        pytest.param("hash static-key", "hash static-key", id="constant key"),
        pytest.param("hash " + "a" * 251, "hash " + "a" * 251, id="256 characters in all"),
    ],
)
def test_parse_lb_accepts(value: str, directive: str) -> None:
    assert L.parse_lb(C, "dynamic-nginx.lb", value) == directive


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("round-robin", id="hyphen instead of underscore"),
        pytest.param("Least_Conn", id="upper case"),
        pytest.param("least_conn;", id="least_conn then semicolon"),
        pytest.param("least_conn; server 6.6.6.6", id="a second directive"),
        pytest.param("least_conn }", id="closing brace"),
        pytest.param(" least_conn", id="leading space"),
        pytest.param("least_conn\n", id="trailing newline"),
        pytest.param("least_time header", id="nginx plus only"),
        pytest.param("random two least_time", id="random with nginx plus method"),
        pytest.param("random three", id="random three"),
        pytest.param("random  two", id="random, double space"),
        pytest.param("ip_hash consistent", id="consistent without hash"),
        pytest.param("hash", id="hash without key"),
        pytest.param("hash ", id="hash with an empty key"),
        pytest.param("hash $foo", id="unknown variable"),
        pytest.param("hash $urix", id="known variable name as prefix of an unknown one"),
        pytest.param("hash $request_uri;", id="semicolon after the key"),
        pytest.param("hash  $uri", id="double space"),
        pytest.param("hash\t$uri", id="tab"),
        pytest.param("hash $uri  consistent", id="double space before consistent"),
        pytest.param("hash $uri consistent;", id="semicolon after consistent"),
        pytest.param("hash $uri Consistent", id="upper-case consistent"),
        pytest.param("hash $uri inconsistent", id="another third word"),
        pytest.param("hash $uri consistent consistent", id="four words"),
        pytest.param("hash ${uri}", id="braced variable"),
        pytest.param("hash $uri{", id="brace in the key"),
        pytest.param("hash '$uri'", id="quoted key"),
        pytest.param('hash "$uri"', id="double-quoted key"),
        pytest.param("hash $uri#x", id="comment sign in the key"),
        pytest.param("hash $http_X_User", id="upper-case header variable"),
        pytest.param("hash $http_", id="header family without a name"),
        pytest.param("hash $arg_" + "a" * 65, id="variable name too long"),
        pytest.param("hash é", id="accented letter"),
        pytest.param("hash ｋｅｙ", id="fullwidth letters"),
        pytest.param("hash ١٢", id="unicode digits"),
        pytest.param("hash \\x3b", id="backslash escape"),
    ],
)
def test_parse_lb_rejects(value: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        L.parse_lb(C, "dynamic-nginx.lb", value)
    message = str(raised.value)
    assert message.startswith(f"container {C}: label dynamic-nginx.lb={value!r} is invalid; allowed: round_robin")
    assert "\n" not in message


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("shop_default", id="compose default network"),
        pytest.param("my-net.1", id="hyphen and dot"),
        pytest.param("N", id="one character"),
        pytest.param("a" * 128, id="128 characters"),
    ],
)
def test_parse_network_accepts(value: str) -> None:
    assert L.parse_network(C, "dynamic-nginx.network", value) == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("-net", id="leading hyphen"),
        pytest.param(".net", id="leading dot"),
        pytest.param("my net", id="space"),
        pytest.param("net;", id="semicolon"),
        pytest.param("net/x", id="slash"),
        pytest.param("a" * 129, id="129 characters"),
        pytest.param("ｎｅｔ", id="fullwidth letters"),
    ],
)
def test_parse_network_rejects(value: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        L.parse_network(C, "dynamic-nginx.network", value)
    assert "allowed: a Docker network name" in str(raised.value)


SEVEN_WORDS = ".".join(["w"] * 7)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("pool", "pool.upstream", id="suffix appended"),
        pytest.param("Pool", "pool.upstream", id="case folded"),
        pytest.param("pool.upstream", "pool.upstream", id="suffix not doubled"),
        pytest.param("POOL.UPSTREAM", "pool.upstream", id="suffix in upper case not doubled"),
        pytest.param("api.v2", "api.v2.upstream", id="dotted name"),
        pytest.param("upstream", "upstream.upstream", id="the word upstream alone is a name"),
        pytest.param(SEVEN_WORDS, SEVEN_WORDS + ".upstream", id="seven words plus the suffix"),
        pytest.param(LONGEST_WORD, LONGEST_WORD + ".upstream", id="63-character word"),
    ],
)
def test_parse_upstream_accepts(value: str, expected: str) -> None:
    assert L.parse_upstream(C, "dynamic-nginx.upstream", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(".upstream", id="the suffix alone"),
        pytest.param("pool.", id="trailing dot"),
        pytest.param(SEVEN_WORDS + ".w", id="eight words plus the suffix is too many"),
        pytest.param("a" * 64, id="64-character word"),
        pytest.param("pool upstream", id="space"),
        pytest.param("pool;", id="semicolon"),
        pytest.param("pool{", id="brace"),
        pytest.param("pool\n", id="newline"),
        pytest.param("$pool", id="variable"),
        pytest.param("pööl", id="umlaut"),
        pytest.param("http://pool", id="a URL"),
        pytest.param("127.0.0.1:80", id="an address"),
    ],
)
def test_parse_upstream_rejects(value: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        L.parse_upstream(C, "dynamic-nginx.upstream", value)
    assert "allowed: a name of letters, digits" in str(raised.value)


def test_server_parameters_in_nginx_order() -> None:
    options = L.ServerOptions(weight=3, max_fails=2, fail_timeout="30s", max_conns=10, backup=True, down=True)
    assert options.parameters == "weight=3 max_fails=2 fail_timeout=30s max_conns=10 backup down"
    assert L.ServerOptions().parameters == ""
    assert L.ServerOptions(max_fails=0, max_conns=0).parameters == "max_fails=0 max_conns=0"


def decode(labels: dict[str, str], service: str = "web") -> L.ContainerLabels:
    return L.decode(C, service, {"com.docker.compose.service": service, **labels})


def member(upstream: str, port: int | None = None, **options: object) -> L.Membership:
    """A Membership, options split between the server line and the upstream block."""
    server = {k: v for k, v in options.items() if k in L.SERVER_PARSERS}
    upstream_wide = {k: v for k, v in options.items() if k in L.UPSTREAM_PARSERS}
    return L.Membership(upstream, port, L.ServerOptions(**server), L.UpstreamOptions(**upstream_wide))  # type: ignore[arg-type]


P = L.LABEL_PREFIX


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param({}, [member("web.upstream")], id="no labels: the service's upstream, defaults"),
        pytest.param(
            {"com.example.other": "x;}{", "traefik.port": "80;"},
            [member("web.upstream")],
            id="other prefixes are not ours to judge",
        ),
        pytest.param({P + "port": "8000"}, [member("web.upstream", 8000)], id="port"),
        pytest.param(
            {
                P + "weight": "3",
                P + "max_fails": "2",
                P + "fail_timeout": "30s",
                P + "max_conns": "100",
                P + "backup": "yes",
                P + "down": "off",
            },
            [member("web.upstream", weight=3, max_fails=2, fail_timeout="30s", max_conns=100, backup=True)],
            id="every server parameter",
        ),
        pytest.param(
            {
                P + "lb": "hash $request_uri consistent",
                P + "keepalive": "16",
                P + "keepalive_timeout": "60s",
                P + "keepalive_requests": "1000",
            },
            [
                member(
                    "web.upstream",
                    lb="hash $request_uri consistent",
                    keepalive=16,
                    keepalive_timeout="60s",
                    keepalive_requests=1000,
                )
            ],
            id="every upstream option",
        ),
        pytest.param({P + "lb": "round_robin"}, [member("web.upstream", lb="")], id="round_robin is no directive"),
        pytest.param({P + "upstream": "pool"}, [member("pool.upstream")], id="explicit upstream"),
        pytest.param({P + "upstream": "Pool.Upstream"}, [member("pool.upstream")], id="explicit upstream with suffix"),
        pytest.param({P + "admin.port": "9000"}, [member("admin.upstream", 9000)], id="named only: not its own"),
        pytest.param(
            {P + "admin.weight": "2"},
            [member("admin.upstream", weight=2)],
            id="named without port: port chosen later",
        ),
        pytest.param(
            {P + "port": "8000", P + "admin.port": "9000"},
            [member("web.upstream", 8000), member("admin.upstream", 9000)],
            id="named and port: own upstream first",
        ),
        pytest.param(
            {P + "upstream": "pool", P + "admin.port": "9000"},
            [member("pool.upstream"), member("admin.upstream", 9000)],
            id="named and explicit upstream",
        ),
        pytest.param(
            {P + "port": "8000", P + "weight": "5", P + "admin.port": "9000", P + "admin.weight": "1"},
            [member("web.upstream", 8000, weight=5), member("admin.upstream", 9000, weight=1)],
            id="options stay with their upstream",
        ),
        pytest.param(
            {P + "metrics.port": "9100", P + "admin.port": "9000", P + "admin.lb": "least_conn"},
            [member("admin.upstream", 9000, lb="least_conn"), member("metrics.upstream", 9100)],
            id="several named, sorted",
        ),
        pytest.param(
            {P + "Admin.port": "9000", P + "admin.weight": "4"},
            [member("admin.upstream", 9000, weight=4)],
            id="named in two cases is one upstream",
        ),
        pytest.param({P + "api.v2.port": "9000"}, [member("api.v2.upstream", 9000)], id="dotted named upstream"),
        pytest.param({P + "admin.upstream.port": "9000"}, [member("admin.upstream", 9000)], id="named with the suffix"),
        pytest.param({P + "enable.port": "9000"}, [member("enable.upstream", 9000)], id="an option word as a name"),
    ],
)
def test_decode_memberships(labels: dict[str, str], expected: list[L.Membership]) -> None:
    assert decode(labels).memberships == tuple(expected)


@pytest.mark.parametrize(
    ("labels", "enable", "network"),
    [
        pytest.param({}, None, None, id="unset"),
        pytest.param({P + "enable": "false"}, False, None, id="enable=false"),
        pytest.param({P + "enable": "TRUE"}, True, None, id="enable=TRUE"),
        pytest.param({P + "network": "shop_back"}, None, "shop_back", id="network"),
    ],
)
def test_decode_container_options(labels: dict[str, str], enable: bool | None, network: str | None) -> None:
    decoded = decode(labels)
    assert (decoded.enable, decoded.network) == (enable, network)


def test_decode_without_service_needs_an_upstream_name() -> None:
    with pytest.raises(L.LabelError) as raised:
        L.decode("lone", "", {P + "enable": "true"})
    assert str(raised.value) == (
        "container lone: it has no compose service, so it needs the label "
        "dynamic-nginx.upstream=<name> to be served; left out"
    )
    assert L.decode("lone", "", {P + "upstream": "pool"}).memberships == (member("pool.upstream"),)
    assert L.decode("lone", "", {P + "admin.port": "9000"}).memberships == (member("admin.upstream", 9000),)


@pytest.mark.parametrize(
    ("labels", "label", "says"),
    [
        pytest.param(
            {P + "weight": "5", P + "admin.port": "9000"},
            P + "weight",
            "need dynamic-nginx.port or dynamic-nginx.upstream as well",
            id="own option beside named ones, without port",
        ),
        pytest.param(
            {P + "lb": "least_conn", P + "admin.port": "9000"},
            P + "lb",
            "need dynamic-nginx.port or dynamic-nginx.upstream as well",
            id="own lb beside named ones, without port",
        ),
        pytest.param({P + "weigth": "5"}, P + "weigth", "options: address, backup, down, enable", id="misspelt option"),
        pytest.param(
            {P + "address": "VIP"}, P + "address", "tasks or vip (Swarm services only)", id="address in upper case"
        ),
        pytest.param({P + "address": "vip;"}, P + "address", "tasks or vip", id="address with a semicolon"),
        pytest.param({P + "address": "dnsrr"}, P + "address", "tasks or vip", id="address: Swarm's dnsrr is not one"),
        pytest.param({P + "Port": "80"}, P + "Port", "options: ", id="option in upper case"),
        pytest.param({P + "": "80"}, P + "", "options: ", id="the bare prefix"),
        pytest.param({P + ".port": "80"}, P + ".port", "options: ", id="empty name before the option"),
        pytest.param({P + "admin..port": "80"}, P + "admin..port", "options: ", id="empty word in the name"),
        pytest.param({P + "admin.enable": "true"}, P + "admin.enable", "options: ", id="enable is per container"),
        pytest.param({P + "admin.network": "n"}, P + "admin.network", "options: ", id="network is per container"),
        pytest.param({P + "admin.upstream": "x"}, P + "admin.upstream", "options: ", id="upstream under a name"),
        pytest.param({P + "a;b.port": "80"}, P + "a;b.port", "options: ", id="semicolon in the name"),
        pytest.param({P + "a b.port": "80"}, P + "a b.port", "options: ", id="space in the name"),
        pytest.param({P + "ａdmin.port": "80"}, P + "ａdmin.port", "options: ", id="fullwidth letter in the name"),
        pytest.param({P + "admin.port ": "80"}, P + "admin.port ", "options: ", id="trailing space in the key"),
        pytest.param({P + "admin.server": "1.2.3.4"}, P + "admin.server", "options: ", id="unknown named option"),
        pytest.param(
            {P + ".".join(["w"] * 8) + ".port": "80"},
            P + ".".join(["w"] * 8),
            "allowed: a name of letters",
            id="named upstream of eight words is nine with the suffix",
        ),
        pytest.param({P + "admin.port": "0"}, P + "admin.port", "from 1 to 65535", id="bad named port"),
        pytest.param({P + "admin.lb": "hash $x"}, P + "admin.lb", "round_robin", id="bad named lb"),
        pytest.param({P + "upstream": "a b"}, P + "upstream", "a name of letters", id="bad explicit upstream"),
        pytest.param({P + "enable": "maybe"}, P + "enable", "true or false", id="bad enable"),
        pytest.param({P + "network": "a;b"}, P + "network", "Docker network name", id="bad network"),
        pytest.param({P + "upstream": "a" * 257}, P + "upstream", "at most 256 characters", id="257 characters"),
        pytest.param({P + "admin.lb": "hash " + "a" * 252}, P + "admin.lb", "at most 256", id="257 in a named"),
    ],
)
def test_decode_rejects(labels: dict[str, str], label: str, says: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        decode(labels)
    message = str(raised.value)
    assert message.startswith(f"container {C}: label {label}=")
    assert says in message
    assert raised.value.label == label


def test_unknown_option_message_lists_every_option() -> None:
    with pytest.raises(L.LabelError) as raised:
        decode({P + "weigth": "5"})
    options = sorted({*L.CONTAINER_PARSERS, *L.MEMBER_PARSERS})
    assert {"port", "weight", "lb", "keepalive", "enable", "network", "upstream"} <= set(options)
    assert str(raised.value) == (
        "container shop-web-1: label dynamic-nginx.weigth='5' is invalid; allowed: labels named "
        "dynamic-nginx.<option> or dynamic-nginx.<name>.<option>, options: "
        + ", ".join(options)
        + ". Fix the label; this container is left out."
    )


def test_a_256_character_value_is_judged_on_its_merits() -> None:
    assert decode({P + "lb": "hash " + "a" * 251}).memberships[0].options.lb == "hash " + "a" * 251


@pytest.mark.parametrize(
    "label",
    [
        pytest.param(P + "port\n" + P + "port", id="newline in the key"),
        pytest.param(P + "x\rcontainer other: fine", id="carriage return in the key"),
        pytest.param(P + "x" * 300, id="very long key"),
        pytest.param(P + "\x1b[2Jx", id="terminal escape in the key"),
    ],
)
def test_a_hostile_label_key_still_gives_one_short_line(label: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        decode({label: "80"})
    message = str(raised.value)
    assert message.startswith(f"container {C}: label ")
    assert message.isprintable()
    assert len(message) < 600


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        pytest.param(
            {P + "upstream": "pool", P + "pool.port": "9000"},
            "labels dynamic-nginx.* and dynamic-nginx.pool.* both put it into pool.upstream",
            id="upstream=pool beside pool.*",
        ),
        pytest.param(
            {P + "port": "8000", P + "web.port": "9000"},
            "labels dynamic-nginx.* and dynamic-nginx.web.* both put it into web.upstream",
            id="its own service's name as a named upstream",
        ),
    ],
)
def test_a_container_joins_an_upstream_once(labels: dict[str, str], says: str) -> None:
    with pytest.raises(L.LabelError) as raised:
        decode(labels)
    assert says in str(raised.value)
    assert str(raised.value).startswith("container shop-web-1: ")
    assert "\n" not in str(raised.value)


def test_different_upstreams_from_both_kinds_of_label_are_fine() -> None:
    decoded = decode({P + "upstream": "pool", P + "admin.port": "9000"})
    assert [m.upstream for m in decoded.memberships] == ["pool.upstream", "admin.upstream"]
