"""Small text helpers shared by the library's messages and file names."""

from __future__ import annotations

import re
import sys

__all__ = ["first_code_line", "first_line", "print_warning", "slug"]


def print_warning(message: str) -> None:
    """``mlnb: warning: MESSAGE`` on stderr: something recorded only in part, the rest kept."""
    # sys.stderr (not sys.__stderr__): in a kernel it reaches the notebook.
    try:
        print(f"mlnb: warning: {message}", file=sys.stderr, flush=True)
    except Exception:  # pragma: no cover - a closed stream at interpreter exit
        pass


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "…"


def first_code_line(source: str, limit: int = 60) -> str:
    """The first non-blank line of a cell's source, shortened to ``limit`` characters."""
    line = next((raw.strip() for raw in source.splitlines() if raw.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def slug(text: str, default: str = "item") -> str:
    """``text`` as a safe file or folder name: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or default
