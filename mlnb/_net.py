"""Local ports for the servers and kernels mlnb starts, and the race in picking them.

A free port is found by binding port 0 and closing the socket; the server that is then
started binds it a moment later, and another process may take it first (jupyter_client
issue 154 for kernels, the same for ``mlnb serve``). The loser fails before doing any work
with "Address already in use" (a kernel's ZeroMQ) or "address already in use" (uvicorn), so
it is simply started again on a new port, up to :data:`PORT_RACE_ATTEMPTS` times.
"""

from __future__ import annotations

import socket

__all__ = ["PORT_RACE_ATTEMPTS", "free_port", "lost_port_race", "port_is_free"]

#: starts of a server or kernel that lost its port before giving up
PORT_RACE_ATTEMPTS = 4


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (see the module docstring)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now (as uvicorn binds it: SO_REUSEADDR,
    so a port a stopped server left in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def lost_port_race(output: str) -> bool:
    """Whether a server or kernel that stopped at start-up said so because its port was
    taken (its log or stderr is ``output``)."""
    return "address already in use" in output.lower()
