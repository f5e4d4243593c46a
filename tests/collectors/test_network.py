"""Network collector against scripted counters and on this machine's loopback."""

from __future__ import annotations

import socket
import threading
from types import SimpleNamespace

import psutil

from fleetgauge.agent.collectors.network import NetworkCollector, is_loopback
from fleetgauge.catalogue import INTERFACE, NETWORK

from .collector_checks import IDENTITY, NOW_NS, FakeClock, by_tag, check_points

RECEIVE, TRANSMIT = NETWORK.field_names
MIB = 1024**2


def nic(received: int, sent: int) -> SimpleNamespace:
    return SimpleNamespace(bytes_recv=received, bytes_sent=sent)


def test_rates_per_interface_loopback_skipped_by_default() -> None:
    counters = {"lo": nic(0, 0), "eth0": nic(100 * MIB, 10 * MIB), "ib0": nic(0, 0)}
    clock = FakeClock()
    net = NetworkCollector(IDENTITY, io_counters=lambda: counters, clock=clock)
    counters.update(lo=nic(5 * MIB, 5 * MIB), eth0=nic(150 * MIB, 12 * MIB), ib0=nic(0, 8 * MIB))
    clock.advance(5)
    interfaces = by_tag(check_points(net.collect(NOW_NS)), NETWORK.name, INTERFACE)
    assert interfaces == {
        "eth0": {RECEIVE: 10 * MIB, TRANSMIT: 0.4 * MIB},
        "ib0": {RECEIVE: 0.0, TRANSMIT: 1.6 * MIB},
    }


def test_a_reset_interface_and_a_new_one_give_no_point_until_the_next_sample() -> None:
    counters = {"eth0": nic(100 * MIB, 10 * MIB)}
    clock = FakeClock()
    net = NetworkCollector(IDENTITY, io_counters=lambda: counters, clock=clock)
    counters.update(eth0=nic(1 * MIB, 1 * MIB), veth9=nic(7, 7))  # driver reloaded; new veth
    clock.advance(1)
    assert net.collect(NOW_NS) == []
    counters.update(eth0=nic(3 * MIB, 1 * MIB), veth9=nic(7, 7))
    clock.advance(1)
    interfaces = by_tag(check_points(net.collect(NOW_NS)), NETWORK.name, INTERFACE)
    assert interfaces == {
        "eth0": {RECEIVE: 2 * MIB, TRANSMIT: 0.0},
        "veth9": {RECEIVE: 0.0, TRANSMIT: 0.0},
    }


def test_loopback_names() -> None:
    assert is_loopback("lo") and is_loopback("lo0")
    assert not is_loopback("eth0") and not is_loopback("lowpan0")


def send_over_loopback(size: int) -> None:
    """Push ``size`` bytes through a real TCP connection on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()) as client:
            peer, _ = server.accept()
            sender = threading.Thread(target=client.sendall, args=(b"x" * size,))
            sender.start()
            received = 0
            with peer:
                while received < size and (chunk := peer.recv(1 << 16)):
                    received += len(chunk)
            sender.join()
    assert received == size


def test_this_machine_loopback_traffic_only_with_include_loopback() -> None:
    clock = FakeClock()
    with_lo = NetworkCollector(IDENTITY, include_loopback=True, clock=clock)
    without_lo = NetworkCollector(IDENTITY, clock=clock)
    send_over_loopback(4 * MIB)
    clock.advance(1)
    interfaces = by_tag(check_points(with_lo.collect(NOW_NS)), NETWORK.name, INTERFACE)
    assert interfaces["lo"][RECEIVE] >= 4 * MIB  # payload plus TCP/IP headers, over 1 s
    assert interfaces["lo"][TRANSMIT] >= 4 * MIB
    others = by_tag(check_points(without_lo.collect(NOW_NS)), NETWORK.name, INTERFACE)
    assert "lo" not in others
    assert set(others) == {n for n in psutil.net_io_counters(pernic=True) if n != "lo"}
    for fields in (*interfaces.values(), *others.values()):
        assert fields[RECEIVE] >= 0 and fields[TRANSMIT] >= 0
