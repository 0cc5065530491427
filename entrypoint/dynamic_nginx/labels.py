"""Label decoding: the one place where untrusted label text becomes typed values.

Any container on the host can set labels, so nothing read here reaches nginx
unless it matched a strict pattern or range first. A bad value raises
LabelError naming the container, the label, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping

LABEL_PREFIX = "dynamic-nginx."
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"
COMPOSE_NUMBER = "com.docker.compose.container-number"

# What may name an upstream: DNS-label-like words joined by dots, as compose
# service names are. No spaces, quotes, braces or semicolons can get through.
NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9][A-Za-z0-9_-]{0,62}){0,7}")
UPSTREAM_SUFFIX = ".upstream"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LabelError(ValueError):
    """A label value failed validation; str() is the one log line to print."""

    def __init__(self, container: str, label: str, value: str, allowed: str, message: str = ""):
        # Keys are untrusted too: one with a newline must not forge a second log line.
        key = label if label.isprintable() and len(label) <= 120 else repr(_cut(label, 120))
        super().__init__(
            message
            or f"container {container}: label {key}={_cut(value, 80)!r} is invalid; "
            f"allowed: {allowed}. Fix the label; this container is left out."
        )
        self.container = container
        self.label = label
        self.allowed = allowed


def is_name(value: str) -> bool:
    """True if value can stand in nginx config as an upstream or zone name."""
    return NAME_RE.fullmatch(value) is not None and len(value) <= 200


def upstream_name(service: str) -> str:
    """The upstream a compose service is served as: `<service>.upstream`, lower-cased.

    Never the bare service name, so a user's `proxy_pass http://web:8000` keeps
    resolving through Docker DNS instead of colliding with our block; nginx
    matches upstream names case-insensitively, so we fold case ourselves.
    """
    return service.lower() + UPSTREAM_SUFFIX


def parse_port(container: str, label: str, value: str) -> int:
    """A TCP port 1-65535 written as plain decimal digits."""
    if re.fullmatch(r"[0-9]{1,5}", value) and 1 <= int(value) <= 65535:
        return int(value)
    raise LabelError(container, label, value, "a port number from 1 to 65535")


MAX_VALUE = 256
# Hard bounds on what one container's labels may ask for: each upstream costs a
# shared-memory zone in every nginx worker generation, so a label set is capped
# rather than trusted. Constants, not settings: no honest container comes near.
MAX_UPSTREAMS_PER_CONTAINER = 16
MAX_LABELS = 256
# nginx takes each unit at most once, largest first; fail_timeout is in whole seconds.
_TIME_UNITS = r"(?=[0-9])(?:[0-9]{1,6}d)?(?:[0-9]{1,6}h)?(?:[0-9]{1,6}m)?(?:[0-9]{1,6}s)?"
SECONDS_RE = re.compile(rf"[0-9]{{1,6}}|{_TIME_UNITS}")
TIME_RE = re.compile(rf"[0-9]{{1,6}}|{_TIME_UNITS}(?:[0-9]{{1,6}}ms)?")
NETWORK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
# nginx variables a hash key may use: fixed names, and the families whose
# names are free-form (query arguments, cookies, request headers).
HASH_VARIABLES = (
    "remote_addr|binary_remote_addr|remote_port|request_uri|uri|document_uri|args|query_string|"
    "is_args|host|hostname|scheme|request_method|server_name|server_port|server_addr|"
    "(?:arg|cookie|http)_[a-z0-9_]{1,64}"
)
HASH_KEY_RE = re.compile(rf"(?:\$(?:{HASH_VARIABLES})(?![A-Za-z0-9_])|[A-Za-z0-9.:/-])+")
TRUE = frozenset({"true", "yes", "1", "on"})
FALSE = frozenset({"false", "no", "0", "off"})


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """Parameters of one `server` line; None means nginx's default."""

    weight: int | None = None
    max_fails: int | None = None
    fail_timeout: str | None = None
    max_conns: int | None = None
    backup: bool = False
    down: bool = False

    @functools.cached_property
    def parameters(self) -> str:
        """The validated parameters as nginx writes them: `weight=3 max_fails=2 backup`.

        Kept once worked out: the options are shared by every server with the
        same labels, and each server's are read at every sync (render, log)."""
        words = [
            f"{name}={value}"
            for name, value in (
                ("weight", self.weight),
                ("max_fails", self.max_fails),
                ("fail_timeout", self.fail_timeout),
                ("max_conns", self.max_conns),
            )
            if value is not None
        ]
        return " ".join(words + ["backup"] * self.backup + ["down"] * self.down)


@dataclasses.dataclass(frozen=True)
class UpstreamOptions:
    """Upstream-wide settings one container asks for; None means not set by it."""

    lb: str | None = None
    keepalive: int | None = None
    keepalive_timeout: str | None = None
    keepalive_requests: int | None = None


@dataclasses.dataclass(frozen=True)
class Membership:
    """One upstream a container joins: on which port, with which server parameters."""

    upstream: str
    port: int | None
    server: ServerOptions
    options: UpstreamOptions
    # Which labels made it (dynamic-nginx. or dynamic-nginx.<name>.), for messages only.
    prefix: str = dataclasses.field(default=LABEL_PREFIX, compare=False)
    # True when the labels name the upstream (dynamic-nginx.upstream or dynamic-nginx.<name>.*),
    # False for the service's own `<service>.upstream`: ownership rules differ.
    explicit: bool = dataclasses.field(default=False, compare=False)


@dataclasses.dataclass(frozen=True)
class ContainerLabels:
    """Everything our labels say about one container, validated."""

    enable: bool | None
    network: str | None
    memberships: tuple[Membership, ...]
    health_gating: bool | None = None
    port: int | None = None  # dynamic-nginx.port: the port of every membership that names none


def parse_int(container: str, label: str, value: str, low: int, high: int) -> int:
    if re.fullmatch(r"[0-9]{1,9}", value) and low <= int(value) <= high:
        return int(value)
    raise LabelError(container, label, value, f"a whole number from {low} to {high}")


def parse_bool(container: str, label: str, value: str) -> bool:
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise LabelError(container, label, value, "true or false")


def parse_time(container: str, label: str, value: str) -> str:
    if TIME_RE.fullmatch(value):
        return value
    raise LabelError(container, label, value, "an nginx time such as 10, 500ms, 30s, 1m or 1h30m")


def parse_seconds(container: str, label: str, value: str) -> str:
    if SECONDS_RE.fullmatch(value):
        return value
    raise LabelError(container, label, value, "an nginx time in seconds such as 10, 30s, 1m or 1h30m")


def parse_lb(container: str, label: str, value: str) -> str:
    """A balancing method, as the directive nginx takes ("" for round robin)."""
    words = value.split(" ")
    if value in ("round_robin", "least_conn", "ip_hash", "random", "random two", "random two least_conn"):
        return "" if value == "round_robin" else value
    if words[0] == "hash" and len(words) in (2, 3) and HASH_KEY_RE.fullmatch(words[1]):
        if len(words) == 2 or words[2] == "consistent":
            return value
    raise LabelError(
        container,
        label,
        value,
        "round_robin, least_conn, ip_hash, hash <key> [consistent] (key made of letters, digits, "
        ".:/- and variables such as $request_uri, $remote_addr, $cookie_NAME, $http_NAME, $arg_NAME), "
        "random, random two, random two least_conn",
    )


def parse_network(container: str, label: str, value: str) -> str:
    if NETWORK_RE.fullmatch(value):
        return value
    raise LabelError(container, label, value, "a Docker network name")


def parse_upstream(container: str, label: str, value: str) -> str:
    """An upstream name; `.upstream` is appended unless it is there already."""
    name = value if value.lower().endswith(UPSTREAM_SUFFIX) else value + UPSTREAM_SUFFIX
    if is_name(name):
        return name.lower()
    raise LabelError(container, label, value, "a name of letters, digits, _ and -, words joined by dots")


Parser = Callable[[str, str, str], object]
SERVER_PARSERS: dict[str, Parser] = {
    "weight": lambda c, k, v: parse_int(c, k, v, 1, 1000),
    "max_fails": lambda c, k, v: parse_int(c, k, v, 0, 1000),
    "fail_timeout": parse_seconds,
    "max_conns": lambda c, k, v: parse_int(c, k, v, 0, 100000),
    "backup": parse_bool,
    "down": parse_bool,
}
UPSTREAM_PARSERS: dict[str, Parser] = {
    "lb": parse_lb,
    "keepalive": lambda c, k, v: parse_int(c, k, v, 1, 10000),
    "keepalive_timeout": parse_time,
    "keepalive_requests": lambda c, k, v: parse_int(c, k, v, 1, 1000000),
}
MEMBER_PARSERS: dict[str, Parser] = {"port": parse_port, **SERVER_PARSERS, **UPSTREAM_PARSERS}
ADDRESSES = ("tasks", "vip")


def parse_address(container: str, label: str, value: str) -> str:
    """Swarm mode: serve a service's tasks one by one, or its one virtual IP."""
    if value in ADDRESSES:
        return value
    raise LabelError(container, label, value, " or ".join(ADDRESSES) + " (Swarm services only)")


CONTAINER_PARSERS: dict[str, Parser] = {
    "address": parse_address,
    "enable": parse_bool,
    "health_gating": parse_bool,
    "network": parse_network,
    "upstream": parse_upstream,
}


def _member(
    values: Mapping[str, object], upstream: str, prefix: str = LABEL_PREFIX, explicit: bool = True
) -> Membership:
    port = values.get("port")
    return Membership(
        upstream=upstream,
        port=port if isinstance(port, int) else None,
        server=ServerOptions(**{k: v for k, v in values.items() if k in SERVER_PARSERS}),  # type: ignore[arg-type]
        options=UpstreamOptions(**{k: v for k, v in values.items() if k in UPSTREAM_PARSERS}),  # type: ignore[arg-type]
        prefix=prefix,
        explicit=explicit,
    )


def _one_membership_each(container: str, members: list[Membership]) -> None:
    """A container joins an upstream once: `dynamic-nginx.upstream=pool` beside
    `dynamic-nginx.pool.*` (or `dynamic-nginx.web.*` in service web) would list
    it twice, silently doubling its share."""
    first: dict[str, Membership] = {}
    for member in members:
        if member.upstream in first:
            name = member.upstream.removesuffix(".upstream")
            raise LabelError(
                container,
                f"{member.prefix}*",
                "",
                "",
                f"container {container}: labels {first[member.upstream].prefix}* and {member.prefix}* both "
                f"put it into {member.upstream}; keep one of them (a container joins an upstream once, "
                f"use dynamic-nginx.{name}.weight for a larger share). This container is left out.",
            )
        first[member.upstream] = member


def decode(container: str, service: str, labels: Mapping[str, str]) -> ContainerLabels:
    """Validate and type every `dynamic-nginx.*` label of one container.

    `dynamic-nginx.<option>` applies to the container's own upstream
    (`<service>.upstream`, or the `dynamic-nginx.upstream` name);
    `dynamic-nginx.<name>.<option>` makes it a member of `<name>.upstream`
    too, for containers that serve several ports. With named upstreams, the
    container joins its own upstream only if `port` or `upstream` says so.
    Raises LabelError on the first bad label: the container is then left out.
    """
    own: dict[str, object] = {}
    container_level: dict[str, object] = {}
    named: dict[str, dict[str, object]] = {}
    ours = sum(1 for label in labels if label.startswith(LABEL_PREFIX))
    if ours > MAX_LABELS:
        raise LabelError(
            container,
            LABEL_PREFIX + "*",
            "",
            "",
            f"container {container}: it has {ours} {LABEL_PREFIX}* labels, "
            f"more than the {MAX_LABELS} allowed; remove the ones it does not need. This container is left out.",
        )
    for label in sorted(labels):
        if not label.startswith(LABEL_PREFIX):
            continue
        value = labels[label]
        if len(value) > MAX_VALUE:
            raise LabelError(container, label, value, f"at most {MAX_VALUE} characters")
        key = label[len(LABEL_PREFIX) :]
        name, dot, option = key.rpartition(".")
        if not dot and option in CONTAINER_PARSERS:
            container_level[option] = CONTAINER_PARSERS[option](container, label, value)
        elif not dot and option in MEMBER_PARSERS:
            own[option] = MEMBER_PARSERS[option](container, label, value)
        elif name and option in MEMBER_PARSERS and is_name(name):
            named.setdefault(name.lower(), {})[option] = MEMBER_PARSERS[option](container, label, value)
        else:
            raise LabelError(
                container,
                label,
                value,
                "labels named dynamic-nginx.<option> or dynamic-nginx.<name>.<option>, options: "
                + ", ".join(sorted({*CONTAINER_PARSERS, *MEMBER_PARSERS})),
            )
    explicit = container_level.get("upstream")
    members = [
        _member(values, parse_upstream(container, LABEL_PREFIX + n, n), f"{LABEL_PREFIX}{n}.")
        for n, values in sorted(named.items())
    ]
    if not named or explicit or "port" in own:
        if explicit is None and not service:
            label = LABEL_PREFIX + "upstream"
            raise LabelError(
                container,
                label,
                "",
                "",
                f"container {container}: it has no compose service, so it needs "
                f"the label {label}=<name> to be served; left out",
            )
        if explicit is None and not is_name(service):
            raise LabelError(
                container,
                COMPOSE_SERVICE,
                service,
                f"a service name usable as an upstream name, or set {LABEL_PREFIX}upstream",
            )
        name = str(explicit) if explicit else upstream_name(service)
        members.insert(0, _member(own, name, explicit=bool(explicit)))
    elif own:
        raise LabelError(
            container,
            LABEL_PREFIX + next(iter(own)),
            str(next(iter(own.values()))),
            "with dynamic-nginx.<name>.* labels, options for the container's own upstream "
            "need dynamic-nginx.port or dynamic-nginx.upstream as well",
        )
    _one_membership_each(container, members)
    if len(members) > MAX_UPSTREAMS_PER_CONTAINER:
        raise LabelError(
            container,
            f"{LABEL_PREFIX}<name>.*",
            "",
            "",
            f"container {container}: its labels put it into "
            f"{len(members)} upstreams, more than the {MAX_UPSTREAMS_PER_CONTAINER} allowed per container; "
            "split it into services or drop dynamic-nginx.<name>.* labels. This container is left out.",
        )
    enable = container_level.get("enable")
    network = container_level.get("network")
    gating = container_level.get("health_gating")
    port = own.get("port")
    return ContainerLabels(
        enable=enable if isinstance(enable, bool) else None,
        network=network if isinstance(network, str) else None,
        memberships=tuple(members),
        health_gating=gating if isinstance(gating, bool) else None,
        port=port if isinstance(port, int) else None,
    )


@dataclasses.dataclass(frozen=True)
class Decoded:
    """Every label of one container that a model rule reads, decoded once.

    The compose labels are Docker's and only read; ours (`dynamic-nginx.*`)
    are validated: `ours` is None exactly when `error` says which label is
    bad, and the rules then treat the container as decode() would fail.
    """

    project: str
    service: str
    number: int  # compose's container number; 0 when missing or not a plain number
    oneoff: bool  # a `compose run` container
    opted_in: bool  # dynamic-nginx.enable says true, read even when another label is bad
    ours: ContainerLabels | None
    error: LabelError | None = None

    @property
    def health_gating(self) -> bool:
        """False only if the container validly opts out of health gating."""
        return self.ours is None or self.ours.health_gating is not False

    @property
    def disabled(self) -> bool:
        """True if `dynamic-nginx.enable` validly says false."""
        return self.ours is not None and self.ours.enable is False


def decode_container(container: str, labels: Mapping[str, str]) -> Decoded:
    """All of a container's labels as typed values; never raises (a bad label is kept in `error`)."""
    service = labels.get(COMPOSE_SERVICE, "")
    number = labels.get(COMPOSE_NUMBER, "")
    try:
        ours: ContainerLabels | None = decode(container, service, labels)
        error = None
    except LabelError as failed:
        ours, error = None, failed
    return Decoded(
        project=labels.get(COMPOSE_PROJECT, ""),
        service=service,
        number=int(number) if number.isascii() and number.isdigit() and len(number) < 9 else 0,
        oneoff=labels.get(COMPOSE_ONEOFF, "False") == "True",
        opted_in=labels.get(LABEL_PREFIX + "enable", "").lower() in TRUE,
        ours=ours,
        error=error,
    )
