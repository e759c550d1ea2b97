"""Small text helpers shared by the library's messages and file names."""

from __future__ import annotations

import re

__all__ = ["first_line", "slug"]


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "…"


def slug(text: str, default: str = "item") -> str:
    """``text`` as a safe file or folder name: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or default
