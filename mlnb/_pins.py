"""Pins: what an exported service reads instead of the project's copy, by reference.

An exported service runs the notebook's own code: ``mlnb.load_model("models:/bc@champion")``
and ``mlnb.load_version("data/train.csv@3")``. The service pins each reference to the copy
in its folder (checked by hash), for the life of the process (:meth:`Pins.pin`) or while
some code runs (:meth:`Pins.pinned`: the export check, a challenger bound to the same code).
Lookups see the innermost ``pinned`` layer first, then the lasting pins. Thread-safe; the
layers are process-wide, as the code that reads them may run in any thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

__all__ = ["Pins"]

T = TypeVar("T")


class Pins(Generic[T]):
    """Reference -> pinned copy. ``what`` names the references in ``repr``."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._lasting: dict[str, T] = {}
        self._layers: list[dict[str, T]] = []
        self._lock = threading.Lock()

    def get(self, ref: str) -> T | None:
        """The copy pinned for ``ref``, or None (read the project's own)."""
        with self._lock:
            for layer in reversed(self._layers):
                if ref in layer:
                    return layer[ref]
            return self._lasting.get(ref)

    def __contains__(self, ref: object) -> bool:
        return isinstance(ref, str) and self.get(ref) is not None

    def pin(self, pins: Mapping[str, T]) -> None:
        """Pin ``pins`` for the life of the process (an exported service, once loaded)."""
        with self._lock:
            self._lasting.update(pins)

    @contextlib.contextmanager
    def pinned(self, pins: Mapping[str, T]) -> Iterator[None]:
        """Pin ``pins`` while the ``with`` block runs, over any other pins; on leaving it,
        the pins are what they were (also when the block raises)."""
        layer = dict(pins)
        with self._lock:
            self._layers.append(layer)
        try:
            yield
        finally:
            with self._lock:  # this layer, by identity: an equal one may be nested
                index = next(i for i, x in enumerate(self._layers) if x is layer)
                del self._layers[index]

    def snapshot(self) -> dict[str, T]:
        """Every reference pinned now, with what it reads."""
        with self._lock:
            merged = dict(self._lasting)
            for layer in self._layers:
                merged.update(layer)
            return merged

    def __repr__(self) -> str:
        return f"Pins({self.what!r}, {len(self.snapshot())} pinned)"
