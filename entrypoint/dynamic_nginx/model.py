"""The model: containers in, upstreams out, with no I/O.

`Container` is what the Docker edge hands us (already converted from API
dicts); `build` groups the eligible ones into `Upstream`s and collects one
log line per container it had to leave out. The model is also what templates
see, so its fields are the documented template context.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Mapping

from . import labels as L
from .exclusions import Excluded, Exclusion, Ledger, absence


@dataclasses.dataclass(frozen=True)
class Container:
    """One container as the Docker edge saw it.

    `networks` maps network name to the container's IPv4 address there;
    `state` is Docker's state ("running", "paused", ...); `health` is None
    without a HEALTHCHECK.
    `stop_timeout` is its stop grace period in seconds, None when it sets none
    (Docker's default applies).
    """

    id: str
    name: str
    labels: Mapping[str, str]
    networks: Mapping[str, str]
    exposed_ports: tuple[int, ...] = ()
    state: str = "running"
    health: str | None = None
    stop_signal: str = ""
    created: str = ""
    stop_timeout: float | None = None

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @functools.cached_property
    def decoded(self) -> L.Decoded:
        """Its labels as typed values, decoded on first use and kept with this object.

        The Docker edge hands out the same object while Docker shows the
        container unchanged, so labels are decoded once per container, not once
        per rule and sync; every model rule reads them from here.
        """
        return L.decode_container(self.name, self.labels)

    @functools.cached_property
    def joined(self) -> dict[tuple[Proxy, L.ServerOptions], tuple[tuple[str, _Member], ...] | Exception]:
        """`members_of`'s answers for this object, per (proxy, defaults): kept
        with it for the same reason as `decoded` (see `members_of`)."""
        return {}

    @property
    def project(self) -> str:
        return self.decoded.project

    @property
    def service(self) -> str:
        return self.decoded.service

    @property
    def number(self) -> int:
        return self.decoded.number


@dataclasses.dataclass(frozen=True)
class Proxy:
    """The container this process runs in: its compose project and networks."""

    id: str
    name: str
    project: str
    networks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Server:
    """One `server` line: a container's address on the network it shares with us."""

    address: str
    port: int
    network: str
    container: Container
    options: L.ServerOptions = L.ServerOptions()

    @property
    def parameters(self) -> str:
        """Validated `server` parameters (`weight=2 backup`), or ""."""
        return self.options.parameters

    @functools.cached_property
    def comment(self) -> str:
        """The container's name if it is a plain Docker name, else its short id (kept
        once worked out: a server object lives as long as its container is unchanged)."""
        name = self.container.name
        return name if SAFE_COMMENT_RE.fullmatch(name) else self.container.short_id


@dataclasses.dataclass(frozen=True)
class Upstream:
    """One `upstream` block. No servers means nginx answers 503 for it.

    `lb` is the balancing directive ("" for round robin); the keepalive
    fields are None when not set. All were validated from labels.
    """

    name: str
    servers: tuple[Server, ...]
    lb: str = ""
    keepalive: int | None = None
    keepalive_timeout: str | None = None
    keepalive_requests: int | None = None

    @property
    def zone_size(self) -> str:
        """The size of the upstream's shared-memory zone, for `zone NAME SIZE` (see `zone_size`)."""
        return zone_size(len(self.servers))


# nginx copies every server of an upstream into its `zone` (measured with
# nginx 1.26 `nginx -t`: about 790 bytes a server, whatever its parameters,
# plus a fixed part); a zone too small fails the whole configuration with
# "ngx_slab_alloc() failed: no memory in upstream zone".
ZONE_BYTES_PER_SERVER = 1024  # measured ~790, rounded up
ZONE_FIXED_BYTES = 16 * 1024
ZONE_MIN_KIB = 64  # what every upstream had before zones were sized: small ones keep it


def zone_size(servers: int) -> str:
    """`zone` size for an upstream of `servers` servers, in nginx's "<n>k" form.

    Room for half as many servers again (headroom, so a zone is never sized
    at its edge), rounded up to a power of two so that the size, and the
    rendered file, change only when an upstream doubles; never below 64k.
    """
    needed = ZONE_FIXED_BYTES + ZONE_BYTES_PER_SERVER * (max(servers, 1) * 3 // 2 + 1)
    kib = ZONE_MIN_KIB
    while kib * 1024 < needed:
        kib *= 2
    return f"{kib}k"


@dataclasses.dataclass(frozen=True)
class Model:
    """Everything a template may use, plus the lines to log about left-out containers."""

    upstreams: tuple[Upstream, ...]
    containers: tuple[Container, ...]
    proxy: Proxy
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    excluded: tuple[Exclusion, ...] = ()


SAFE_COMMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,200}")
# Each upstream is a shared-memory zone in every nginx worker generation: however
# many containers and labels ask, no more than this are written. Not a setting.
MAX_UPSTREAMS = 1000
# nginx rejects `backup` servers with these balancing methods.
NO_BACKUP_LB = ("hash", "ip_hash", "random")
REFERENCE_RE = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9][A-Za-z0-9_.-]*\.upstream)(?![A-Za-z0-9_.-])", re.I)


def referenced_upstreams(texts: Iterable[str]) -> set[str]:
    """Every `<name>.upstream` mentioned in nginx config texts, lower-cased.

    These must exist even when no container serves them, or nginx would refuse
    the whole configuration ("host not found in upstream").
    """
    found: set[str] = set()
    for text in texts:
        found |= _references(text)
    return found


# The names found in each text, by (length, hash) of the text, not the text itself:
# files may be up to MAX_CONFIG_BYTES each, and keeping them would grow the watcher.
_REFERENCES: dict[tuple[int, int], frozenset[str]] = {}
REFERENCES_KEPT = 64


def _references(text: str) -> frozenset[str]:
    """The names in one text, remembered: every sync reads the user's files again, they
    seldom change, and the scan costs about a millisecond a dozen kilobytes."""
    key = (len(text), hash(text))
    found = _REFERENCES.get(key)
    if found is None:
        found = frozenset(n for m in REFERENCE_RE.finditer(text) if L.is_name(n := m.group(1).lower()))
        if len(_REFERENCES) >= REFERENCES_KEPT:
            _REFERENCES.clear()  # files that changed many times: start again
        _REFERENCES[key] = found
    return found


def in_scope(container: Container, proxy: Proxy, scope: str = "project") -> bool:
    """Not the proxy, not a one-off `run`; in the proxy's compose project, or
    (with scope "all") anywhere if it opts in with `dynamic-nginx.enable=true`."""
    decoded = container.decoded
    if container.id == proxy.id or decoded.oneoff:
        return False
    if proxy.project and decoded.project == proxy.project:
        return True
    return scope == "all" and decoded.opted_in


def choose_network(container: Container, proxy: Proxy, wanted: str | None = None) -> tuple[str, str]:
    """The network and IPv4 address by which the proxy reaches the container.

    `wanted` (the `dynamic-nginx.network` label) must be shared with the
    proxy. Otherwise, when several networks are shared, the first by name
    wins, so the choice is the same at every rebuild (map order is not).
    """
    network, address, _ = network_choice(container, proxy, wanted)
    return network, address


def network_choice(container: Container, proxy: Proxy, wanted: str | None = None) -> tuple[str, str, str]:
    """`choose_network`'s answer and why, in words (for `explain`): the rule lives here only."""
    shared = sorted(n for n in container.networks if n in proxy.networks)
    why = (
        "the only network it shares with the proxy"
        if len(shared) == 1
        else f"the first by name with an IPv4 address of those it shares with the proxy ({', '.join(shared)})"
    )
    if wanted is not None:
        why = f"named by its label {L.LABEL_PREFIX}network"
        if wanted not in shared:
            raise Excluded(
                f"container {container.name}: label {L.LABEL_PREFIX}network={wanted!r} names a network "
                f"it does not share with the proxy (shared: {', '.join(shared) or 'none'}); left out",
                "no_shared_network",
            )
        shared = [wanted]
    for network in shared:
        address = container.networks[network]
        if _is_ipv4(address):
            return network, address, why
    if shared:
        raise Excluded(
            f"container {container.name}: no IPv4 address on shared network(s) {', '.join(shared)}; left out",
            "no_ipv4_address",
        )
    raise Excluded(
        f"container {container.name}: shares no network with the proxy "
        f"(it is on {', '.join(sorted(container.networks)) or 'no network'}; the proxy on "
        f"{', '.join(proxy.networks) or 'no network'}); left out. "
        "Put both on one network.",
        "no_shared_network",
    )


@functools.lru_cache(maxsize=4096)  # asked about every server at every sync; addresses repeat
def _is_ipv4(address: str) -> bool:
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return False
    return True


def choose_port(container: Container) -> int:
    """`dynamic-nginx.port`, else the single exposed port, else 80."""
    return port_choice(container)[0]


def port_choice(container: Container) -> tuple[int, str]:
    """`choose_port`'s answer and why, in words (for `explain`): the rule lives here only."""
    label = L.LABEL_PREFIX + "port"
    ours = _ours(container)
    if ours.port is not None:
        return ours.port, f"set by its label {label}"
    ports = sorted(set(container.exposed_ports))
    if len(ports) == 1:
        return ports[0], "the only port its image exposes"
    if not ports:
        return 80, f"the default: its image exposes no port and no {label} label is set"
    if 80 in ports:
        return 80, f"80 is among the ports its image exposes ({', '.join(map(str, ports))})"
    raise Excluded(
        f"container {container.name}: exposes several ports "
        f"({', '.join(map(str, ports))}) and none is 80; "
        f"set the label {label}=<port> to choose one; left out",
        "port_ambiguous",
    )


def _ours(container: Container) -> L.ContainerLabels:
    """The container's dynamic-nginx.* labels, or the LabelError they failed with."""
    decoded = container.decoded
    if decoded.ours is None:
        assert decoded.error is not None
        # The error is kept with the container and raised again at each sync: a fresh traceback each time.
        raise decoded.error.with_traceback(None)
    return decoded.ours


@dataclasses.dataclass(frozen=True)
class _Member:
    server: Server
    options: L.UpstreamOptions
    prefix: str = L.LABEL_PREFIX  # the labels' prefix, for warnings
    explicit: bool = False  # named by a label, not the service's own upstream


JOINED_KEPT = 4  # members_of answers kept per container: one proxy and one set of defaults at a time, nearly always


@functools.lru_cache(maxsize=1024)  # few distinct label sets, asked for every server at every sync
def with_defaults(options: L.ServerOptions, defaults: L.ServerOptions) -> L.ServerOptions:
    """The container's own server parameters, and the defaults where it set none."""
    unset = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(options) if getattr(options, f.name) is None}
    return dataclasses.replace(options, **unset)


def members_of(
    container: Container, proxy: Proxy, defaults: L.ServerOptions = L.ServerOptions()
) -> list[tuple[str, _Member]]:
    """(upstream name, member) for every upstream the container joins, or
    Excluded/LabelError saying why it cannot be served at all.

    The answer depends on nothing but its arguments, and the Docker edge hands
    out the same Container object while Docker shows it unchanged, so it is
    worked out once per (container object, proxy, defaults) and kept with the
    container: at every sync only the containers that changed pay for it.
    """
    key = (proxy, defaults)
    known = container.joined.get(key)
    if known is None:
        try:
            known = tuple(_members(container, proxy, defaults))
        except (Excluded, L.LabelError) as error:
            known = error
        if len(container.joined) >= JOINED_KEPT:
            container.joined.clear()  # the proxy's networks or the defaults changed: the old answers are done
        container.joined[key] = known
    if isinstance(known, Exception):
        raise known.with_traceback(None)  # a fresh traceback each time, as _ours does
    return list(known)


def _members(container: Container, proxy: Proxy, defaults: L.ServerOptions) -> list[tuple[str, _Member]]:
    decoded = _ours(container)
    if decoded.enable is False:
        return []
    network, address = choose_network(container, proxy, decoded.network)
    joined = []
    for membership in decoded.memberships:
        port = membership.port if membership.port is not None else choose_port(container)
        options = with_defaults(membership.server, defaults)
        server = Server(f"{address}:{port}", port, network, container, options)
        member = _Member(server, membership.options, membership.prefix, membership.explicit)
        joined.append((membership.upstream, member))
    return joined


def owners_of(containers: Iterable[Container], proxy: Proxy, services: Iterable[str] = ()) -> dict[str, str]:
    """`<service>.upstream` -> service, for every service of the proxy's own project.

    `services` are the project's services known to exist with no container
    listed at the moment (scaled to 0, being recreated): a name stays its
    service's whether or not a replica runs. Other projects own nothing here.
    """
    own = {c.service for c in containers if proxy.project and c.project == proxy.project}
    return {L.upstream_name(s): s.lower() for s in sorted({*services, *own}) if L.is_name(s)}


def refusal(container: Container, name: str, explicit: bool, proxy: Proxy, owners: Mapping[str, str]) -> str | None:
    """Why the container may not join upstream `name`, as one log line; None if it may (see `refused`)."""
    found = refused(container, name, explicit, proxy, owners)
    return None if found is None else found[1]


def refused(
    container: Container, name: str, explicit: bool, proxy: Proxy, owners: Mapping[str, str]
) -> tuple[str, str] | None:
    """(Exclusion reason, log line) if the container may not join upstream `name`; None if it may.

    Labels come with images too: `<service>.upstream` belongs to that service
    of the proxy's project, and nothing else joins it by label. A container of
    another project (or none) joins only names its labels give and that no
    service here owns, so a neighbour's `web` never merges into our `web`.
    """
    owner = owners.get(name)
    in_project = bool(proxy.project) and container.project == proxy.project
    if in_project and (owner is None or owner == container.service.lower()):
        return None
    if not in_project and owner is None and explicit:
        return None
    if owner is not None:
        return f"upstream_owned_by:{owner}", (
            f"container {container.name}: its labels would put it into {name}, which belongs to service "
            f"{owner} of project {proxy.project}; only {owner}'s containers may join it (even while it has none "
            f"running). Name another upstream with {L.LABEL_PREFIX}upstream; left out of {name}"
        )
    return "upstream_not_named", (
        f"container {container.name}: (project {container.project or 'none'}) it would join {name} only by its "
        f"service name; outside the proxy's project ({proxy.project or 'none'}) a container joins only an upstream "
        f"it names: set {L.LABEL_PREFIX}upstream=<name>; left out of {name}"
    )


def _upstream_names(container: Container, proxy: Proxy, owners: Mapping[str, str]) -> list[str]:
    """The upstreams a container would join, for keeping them (503) while it is not live."""
    decoded = container.decoded.ours
    if decoded is None:
        # Its labels are bad, but its service's upstream must still exist (answering 503).
        wanted = [(L.upstream_name(container.service), False)] if L.is_name(container.service) else []
    else:
        wanted = [(m.upstream, m.explicit) for m in decoded.memberships] if decoded.enable is not False else []
    return [name for name, explicit in wanted if refusal(container, name, explicit, proxy, owners) is None]


def _sort_key(server: Server) -> tuple[int, str, str, int]:
    return (server.container.number, server.container.name, server.container.id, server.port)


def _newest(member: _Member) -> tuple[str, str]:
    return (member.server.container.created, member.server.container.name)


def _normal(field: str, value: object) -> object:
    """Unset lb and round_robin mean the same, so they never disagree."""
    return "" if field == "lb" and value is None else value


def _shown(value: object) -> str:
    """An upstream option's value as a warning shows it ("" is lb's round robin)."""
    return "unset" if value is None else str(value) or "round_robin"


def resolve_options(name: str, members: list[_Member]) -> tuple[L.UpstreamOptions, list[str]]:
    """One value per upstream-wide option, when replicas disagree (a rolling
    update): the newest container's wins, and a warning names them all."""
    chosen: dict[str, object] = {}
    warnings = []
    newest_first = sorted(members, key=_newest, reverse=True)
    prefixes = sorted({m.prefix for m in members})
    for field in dataclasses.fields(L.UpstreamOptions):
        values = {m.server.container.name: _normal(field.name, getattr(m.options, field.name)) for m in newest_first}
        chosen[field.name] = getattr(newest_first[0].options, field.name) if newest_first else None
        if len(set(values.values())) > 1:
            listed = "; ".join(f"{c}: {_shown(v)}" for c, v in sorted(values.items()))
            warnings.append(
                f"upstream {name}: replicas disagree on {' / '.join(p + field.name for p in prefixes)} ({listed}); "
                f"using {newest_first[0].server.container.name}'s, the newest container's"
            )
    return L.UpstreamOptions(**chosen), warnings  # type: ignore[arg-type]


# The last _combine answer per upstream name, with the members it was for. A member
# object lives as long as its container object (see members_of), so an upstream whose
# containers Docker shows unchanged is found here by identity: a sync then combines
# only the upstreams that changed. Pruned to the names of the last build.
_COMBINED: dict[str, tuple[tuple[_Member, ...], tuple[Upstream, tuple[str, ...], tuple[str, ...]]]] = {}


def _combined(name: str, members: list[_Member]) -> tuple[Upstream, list[str], list[str]]:
    """`_combine`, remembered per upstream while its member objects are the same ones."""
    known = _COMBINED.get(name)
    if (
        known is not None
        and len(known[0]) == len(members)
        and all(a is b for a, b in zip(known[0], members, strict=True))
    ):
        upstream, problems, warnings = known[1]
    else:
        fresh = _combine(name, members)
        upstream, problems, warnings = fresh[0], tuple(fresh[1]), tuple(fresh[2])
        _COMBINED[name] = (tuple(members), (upstream, problems, warnings))
    return upstream, list(problems), list(warnings)


def _combine(name: str, members: list[_Member]) -> tuple[Upstream, list[str], list[str]]:
    """The upstream block for a group, leaving out combinations nginx rejects."""
    options, warnings = resolve_options(name, members)
    lb = options.lb or ""
    problems = []
    servers = [m.server for m in members]
    if lb.split(" ")[0] in NO_BACKUP_LB:
        for server in [s for s in servers if s.options.backup]:
            problems.append(
                f"container {server.container.name}: {L.LABEL_PREFIX}backup cannot be combined with "
                f"lb={lb.split(' ')[0]} in upstream {name} (nginx rejects it); left out of {name}"
            )
        servers = [s for s in servers if not s.options.backup]
    if servers and all(s.options.backup for s in servers):
        warnings.append(f"upstream {name}: only backup servers are live; serving them as primary servers")
        servers = [dataclasses.replace(s, options=dataclasses.replace(s.options, backup=False)) for s in servers]
    upstream = Upstream(
        name=name,
        servers=tuple(sorted(servers, key=_sort_key)),
        lb=lb if servers else "",
        keepalive=options.keepalive,
        keepalive_timeout=options.keepalive_timeout,
        keepalive_requests=options.keepalive_requests,
    )
    return upstream, problems, warnings


# Asked, inside `build`, for the containers (by id) whose servers do not accept connections yet.
Unready = Callable[[Collection[Server]], Collection[str]]


def _admit(
    container: Container, proxy: Proxy, owners: Mapping[str, str], defaults: L.ServerOptions, ledger: Ledger
) -> list[tuple[str, _Member]] | None:
    """The (upstream, member) pairs the container may join, or None (logged and excluded) if none."""
    try:
        joined = members_of(container, proxy, defaults)
    except Excluded as error:
        ledger.problems.append(str(error))
        ledger.exclude(container, error.reason, str(error))
        return None
    except L.LabelError as error:
        ledger.problems.append(str(error))
        ledger.exclude(container, f"label_invalid:{error.label}", str(error))
        return None
    if not joined:
        ledger.exclude(container, "disabled_by_label", f"{L.LABEL_PREFIX}enable is false")
        return None
    allowed, refusals = [], []
    for name, member in joined:
        refusal_ = refused(container, name, member.explicit, proxy, owners)
        if refusal_ is None:
            allowed.append((name, member))
        else:
            ledger.problems.append(refusal_[1])
            refusals.append(refusal_)
    if not allowed:
        ledger.exclude(container, *refusals[0])
    return allowed or None


def build(
    containers: Iterable[Container],
    proxy: Proxy,
    extra_upstreams: Iterable[str] = (),
    scope: str = "project",
    defaults: L.ServerOptions = L.ServerOptions(),
    services: Iterable[str] = (),
    *,
    leaving: Collection[str] = frozenset(),
    pending: Collection[str] = frozenset(),
    unready: Unready | None = None,
) -> Model:
    """Group live, in-scope containers into upstreams (`<service>.upstream` by default).

    `extra_upstreams` are names that must exist even with no container (ones
    the user's config refers to), so nginx answers 503 for them instead of
    failing to load the configuration. `defaults` fills the server parameters
    a container's labels leave unset. `services` names services of the proxy's
    project that own their upstream though no container of theirs is listed.
    `leaving` (signalled to stop) and `pending` (held back) are container ids
    left out while Docker still runs them; `unready`, if given, is asked once
    about the servers of every container about to join (without a health
    check) and the ids it returns are left out too, so one build decides
    readiness. A left-out container keeps its upstreams (503, not a broken
    config). An upstream exists only while a container or an extra name
    needs it, and at most MAX_UPSTREAMS of them.
    """
    extra = {name.lower() for name in extra_upstreams if L.is_name(name)}
    groups: dict[str, list[_Member]] = {name: [] for name in extra}
    ledger = Ledger()
    candidates = []
    for container in sorted(containers, key=lambda c: (c.name, c.id)):
        if in_scope(container, proxy, scope):
            candidates.append(container)
        elif container.id != proxy.id:
            ledger.exclude(container, "out_of_scope", f"not in project {proxy.project or '(none)'} nor opted in")
    owners = owners_of(candidates, proxy, services)
    admitted: dict[str, list[tuple[str, _Member]]] = {}
    for container in candidates:
        absent = absence(container, leaving, pending)
        joined = None if absent is not None else _admit(container, proxy, owners, defaults, ledger)
        if absent is not None:
            ledger.exclude(container, *absent)
        if joined is None:
            for name in _upstream_names(container, proxy, owners):
                groups.setdefault(name, [])
            continue
        admitted[container.id] = joined
    not_ready = _not_ready(admitted, unready)
    included: list[Container] = []
    for container in candidates:
        for name, member in admitted.get(container.id, ()):
            groups.setdefault(name, [])
            if container.id not in not_ready:
                groups[name].append(member)
        if container.id in not_ready:
            ledger.exclude(container, "starting", "its port does not accept connections yet")
        elif container.id in admitted:
            included.append(container)
    return _assemble(groups, extra, included, proxy, ledger)


def _not_ready(admitted: Mapping[str, list[tuple[str, _Member]]], unready: Unready | None) -> set[str]:
    """Ids of admitted containers without a health check whose servers `unready` finds closed."""
    if unready is None:
        return set()
    servers = [m.server for joined in admitted.values() for _, m in joined if m.server.container.health is None]
    return set(unready(servers)) & set(admitted)


def _assemble(
    groups: dict[str, list[_Member]], extra: set[str], included: list[Container], proxy: Proxy, ledger: Ledger
) -> Model:
    """The model from the grouped members: capped, combined, and every unserved container accounted for."""
    problems, warnings = ledger.problems, []
    groups, dropped = _capped(groups, extra)
    if dropped:
        problems.append(
            f"{len(groups) + len(dropped)} upstreams wanted, more than the {MAX_UPSTREAMS} served at most; "
            f"left out: {', '.join(dropped[:5])}{' ...' if len(dropped) > 5 else ''} (empty ones first, then by name). "
            "Remove dynamic-nginx.<name>.* labels or containers nobody needs"
        )
    upstreams = []
    for name, members in sorted(groups.items()):
        upstream, more_problems, more_warnings = _combined(name, members)
        upstreams.append(upstream)
        problems += more_problems
        warnings += more_warnings
    for name in _COMBINED.keys() - groups.keys():
        _COMBINED.pop(name, None)
    served = {s.container.id for u in upstreams for s in u.servers}
    for container in included:
        if container.id not in served and dropped:
            ledger.exclude(container, "too_many_upstreams", "its upstreams were left out: too many upstreams")
        elif container.id not in served:
            ledger.exclude(container, "backup_with_lb", "a backup server where the balancing method allows none")
    return Model(
        upstreams=tuple(upstreams),
        containers=tuple(included),
        proxy=proxy,
        problems=tuple(problems),
        warnings=tuple(warnings),
        excluded=tuple(sorted(ledger.excluded.values(), key=lambda e: (e.container, e.id))),
    )


def _capped(groups: dict[str, list[_Member]], needed: set[str]) -> tuple[dict[str, list[_Member]], list[str]]:
    """At most MAX_UPSTREAMS groups: names the user's config refers to first (nginx
    refuses a config naming a missing upstream), then served ones, then stubs; by name within each."""
    if len(groups) <= MAX_UPSTREAMS:
        return groups, []
    order = sorted(groups, key=lambda n: (n not in needed, not groups[n], n))
    kept = set(order[:MAX_UPSTREAMS])
    dropped = sorted(order[MAX_UPSTREAMS:], key=lambda n: (bool(groups[n]), n))
    return {n: m for n, m in groups.items() if n in kept}, dropped
