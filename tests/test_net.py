"""Free ports and the race in taking them (``mlnb._net``)."""

from __future__ import annotations

import socket

import pytest

from mlnb._net import free_port, lost_port_race


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_the_race_is_recognised_in_what_a_loser_says() -> None:
    """What Python (uvicorn's bind) and ZeroMQ (a kernel) say on a taken port is recognised;
    other start-up failures are not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as late,
            pytest.raises(OSError) as taken,
        ):
            late.bind(("127.0.0.1", port))
    assert lost_port_race(str(taken.value)), taken.value
    assert lost_port_race("zmq.error.ZMQError: Address already in use (addr='tcp://127.0.0.1:5')")
    assert not lost_port_race("ModuleNotFoundError: No module named 'sklearn'")
