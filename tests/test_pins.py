"""Pins: what an exported service reads instead of the project's copy (``mlnb._pins``)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlnb._pins import Pins
from mlnb.tracking import pinned_models
from mlnb.versioning import pinned_versions


def test_pinned_lasts_for_the_block_and_inner_pins_win() -> None:
    pins: Pins[Path] = Pins("model URI")
    pins.pin({"models:/a/1": Path("/service/a"), "models:/b/1": Path("/service/b")})
    with pins.pinned({"models:/a/1": Path("/challenger/a")}):
        assert pins.get("models:/a/1") == Path("/challenger/a")
        with pins.pinned({"models:/a/1": Path("/inner/a"), "models:/c/1": Path("/inner/c")}):
            assert pins.get("models:/a/1") == Path("/inner/a")
            assert "models:/c/1" in pins
        assert pins.get("models:/a/1") == Path("/challenger/a")
        assert "models:/c/1" not in pins
        assert pins.get("models:/b/1") == Path("/service/b")
    assert pins.snapshot() == {"models:/a/1": Path("/service/a"), "models:/b/1": Path("/service/b")}
    assert pins.get("models:/zzz/1") is None


def test_pins_are_restored_when_the_block_raises() -> None:
    pins: Pins[int] = Pins("ref")
    with pytest.raises(RuntimeError, match="boom"), pins.pinned({"x": 1}):
        assert pins.get("x") == 1
        raise RuntimeError("boom")
    assert pins.snapshot() == {}


def test_equal_layers_left_out_of_order_leave_the_other_in_place() -> None:
    """Layers are removed by identity: two threads pinning the same mapping do not take each
    other's layer away."""
    pins: Pins[int] = Pins("ref")
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with pins.pinned({"x": 1}):
            inside.set()
            leave.wait(60)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(60)
    with pins.pinned({"x": 1}):
        pass
    assert pins.get("x") == 1  # the other thread's layer is still there
    leave.set()
    thread.join(60)
    assert pins.get("x") is None


def test_tracking_and_versioning_own_their_registries() -> None:
    assert isinstance(pinned_models, Pins) and pinned_models.what == "model URI"
    assert isinstance(pinned_versions, Pins) and pinned_versions.what == "version reference"
    assert "Pins('model URI'" in repr(pinned_models)
