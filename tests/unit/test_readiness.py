"""A new replica joins once its port accepts connections (real sockets on 127.0.0.1)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Collection, Iterator

import pytest
from dynamic_nginx import model
from dynamic_nginx.readiness import Readiness, accepting, split_address
from support import container, proxy


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server


def address_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return address_of(sock)  # nothing listens once it is closed


def test_accepting_tells_a_listening_port_from_a_closed_one(listening: socket.socket) -> None:
    open_, closed = address_of(listening), closed_port()
    assert accepting([open_, closed]) == {open_}


def test_accepting_nothing_is_nothing() -> None:
    assert accepting([]) == set()


@pytest.mark.parametrize("address", ["", "nonsense", "127.0.0.1:notaport", "127.0.0.1:", ":80", "127.0.0.1:0"])
def test_bad_addresses_are_never_ready(address: str) -> None:
    assert accepting([address]) == set()


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("172.18.0.2:80", ("172.18.0.2", 80)),
        ("[fd00::2]:8080", ("fd00::2", 8080)),
        ("172.18.0.2:65536", None),
        ("172.18.0.2", None),
    ],
)
def test_split_address(address: str, parts: tuple[str, int] | None) -> None:
    assert split_address(address) == parts


def built(*containers):
    return model.build(list(containers), proxy())


class FakeNetwork:
    """The probe's view of the network: which addresses accept (set by the test)."""

    def __init__(self, *accepting: str):
        self.accepting = set(accepting)
        self.probed: list[str] = []

    def __call__(self, addresses: Collection[str], timeout: float) -> set[str]:
        self.probed += sorted(addresses)
        return set(addresses) & self.accepting


def test_unready_until_the_port_accepts_then_remembered() -> None:
    network = FakeNetwork()
    readiness = Readiness(network)  # no notify: no background prober
    web = container()
    assert readiness.unready(built(web)) == {web.id}
    assert readiness.unready(built(web)) == {web.id}, "still waiting, not probed again inline"
    assert network.probed == ["172.18.0.2:80"]


def test_already_listening_replicas_join_at_once() -> None:
    readiness = Readiness(FakeNetwork("172.18.0.2:80"))
    assert readiness.unready(built(container())) == set()


def test_health_checked_containers_are_not_probed() -> None:
    readiness = Readiness(lambda addresses, timeout: pytest.fail(f"probed {addresses}"))
    assert readiness.unready(built(container(health="healthy"))) == set()


def test_a_replaced_container_at_the_same_address_is_probed_again() -> None:
    network = FakeNetwork("172.18.0.2:80")
    readiness = Readiness(network)
    readiness.unready(built(container("shop-web-1")))
    readiness.unready(built())  # gone
    readiness.unready(built(container("shop-web-1", id="e" * 64)))  # a new one reuses the address
    assert len(network.probed) == 2


def test_the_prober_notifies_as_soon_as_a_real_port_starts_listening() -> None:
    """Real sockets: the replica refuses at first, then listens; notify comes within a few polls."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    address = address_of(server)
    notified = threading.Event()
    readiness = Readiness(accepting, notify=notified.set)
    web = container(ip="127.0.0.1", labels={"dynamic-nginx.port": address.rsplit(":", 1)[1]})
    try:
        assert readiness.unready(built(web)) == {web.id}
        assert not notified.wait(0.1), "notified although nothing listens"
        server.listen()
        listened = time.monotonic()
        assert notified.wait(5), "not notified within 5 s of the port listening"
        assert time.monotonic() - listened < 1.0, "took longer than a slow poll: the fast poll is broken"
        assert readiness.unready(built(web)) == set()
    finally:
        readiness.stop(timeout=5)
        server.close()


def test_the_prober_forgets_a_replica_that_left() -> None:
    network = FakeNetwork()
    calls = threading.Event()
    readiness = Readiness(network, notify=calls.set)
    readiness.unready(built(container()))
    assert readiness.waiting()
    readiness.unready(built())  # the replica left before it ever listened
    assert readiness.waiting() == set()
    network.accepting.add("172.18.0.2:80")
    assert not calls.wait(0.2), "notified for a replica that is gone"
    readiness.stop(timeout=5)


def test_stop_ends_the_prober_thread() -> None:
    before = set(threading.enumerate())
    readiness = Readiness(FakeNetwork(), notify=lambda: None)
    readiness.unready(built(container()))
    probers = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in probers] == ["readiness"], "a refusing address starts the prober"
    readiness.stop(timeout=5)
    assert not probers[0].is_alive(), "the prober outlived stop()"
    readiness.unready(built(container()))
    assert set(threading.enumerate()) <= before, "started again after stop"
