"""Kernel start-up for pipeline steps, against real ipykernel processes."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from mlnb.pipeline import _kernels
from mlnb.pipeline._kernels import KernelStartError, shutdown, start_kernel


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _launch_on(port: int, launches: list[Any], times: int) -> Any:
    """``_launch`` whose first ``times`` kernels are told to bind ``port``, which another
    socket holds: the race jupyter_client issue 154 describes, made certain. The kernel and
    the collision are real; only the choice of port is forced."""
    real = _kernels._launch

    def launch(name: str, cwd: Path, env: Any) -> Any:
        forced = {"cache_ports": False, "shell_port": port} if len(launches) < times else {}
        km = real(name, cwd, env, **forced)
        launches.append(km)
        return km

    return launch


@pytest.mark.usefixtures("kernels")
def test_a_kernel_that_loses_its_port_is_replaced_by_one_that_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = _taken_port()
    launches: list[Any] = []
    monkeypatch.setattr(_kernels, "_launch", _launch_on(holder.getsockname()[1], launches, times=1))
    try:
        km = start_kernel("python3", tmp_path, {})
        try:
            assert len(launches) == 2, "the kernel that lost its port was not replaced"
            assert _kernels.is_alive(km)
            assert not _kernels.is_alive(launches[0])
        finally:
            shutdown(km, now=True)
    finally:
        holder.close()


@pytest.mark.usefixtures("kernels")
def test_a_kernel_that_keeps_losing_its_port_is_an_error_that_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = _taken_port()
    launches: list[Any] = []
    monkeypatch.setattr(
        _kernels,
        "_launch",
        _launch_on(holder.getsockname()[1], launches, times=_kernels.PORT_RACE_ATTEMPTS),
    )
    try:
        with pytest.raises(KernelStartError, match="Address already in use"):
            start_kernel("python3", tmp_path, {})
        assert len(launches) == _kernels.PORT_RACE_ATTEMPTS
        assert not any(_kernels.is_alive(km) for km in launches)
    finally:
        holder.close()
