"""A new replica joins once its port accepts connections (real sockets on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest
from dynamic_nginx import model
from dynamic_nginx.readiness import FAST_RECHECK, Readiness, accepts
from support import container, proxy


def test_accepts_a_listening_port_and_refuses_a_closed_one() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert accepts(f"127.0.0.1:{port}")
    assert not accepts(f"127.0.0.1:{port}")  # closed now


@pytest.mark.parametrize("address", ["", "nonsense", "127.0.0.1:notaport", "127.0.0.1:"])
def test_accepts_bad_addresses_as_not_ready(address: str) -> None:
    assert not accepts(address)


def built(*containers):
    return model.build(list(containers), proxy())


def test_unready_until_the_port_accepts_then_remembered() -> None:
    answers = {"172.18.0.2:80": False}
    probed: list[str] = []

    def probe(address: str) -> bool:
        probed.append(address)
        return answers[address]

    readiness = Readiness(probe)
    web = container()
    assert readiness.unready(built(web)) == {web.id}
    assert readiness.recheck_in() == FAST_RECHECK
    answers["172.18.0.2:80"] = True
    assert readiness.unready(built(web)) == set()
    assert readiness.recheck_in() is None
    readiness.unready(built(web))
    assert probed == ["172.18.0.2:80"] * 2  # once ready, never probed again


def test_health_checked_containers_are_not_probed() -> None:
    readiness = Readiness(lambda address: pytest.fail(f"probed {address}"))
    assert readiness.unready(built(container(health="healthy"))) == set()


def test_a_replaced_container_at_the_same_address_is_probed_again() -> None:
    probed: list[str] = []
    readiness = Readiness(lambda address: probed.append(address) or True)
    readiness.unready(built(container("shop-web-1")))
    readiness.unready(built())  # gone
    readiness.unready(built(container("shop-web-1", id="e" * 64)))  # a new one reuses the address
    assert len(probed) == 2
