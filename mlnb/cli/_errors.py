"""How a command ends on an error: the one place errors become exit codes.

An :class:`~mlnb.exceptions.MlnbError` is one line ``mlnb: error: …`` on stderr and its
``exit_code``; Ctrl-C is 130; a full disk no store turned into a
:class:`~mlnb.exceptions.DiskFullError` is one anyway (naming the full folder when it can);
anything else is a bug and keeps its traceback. mlnb's own warnings are one line each.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

from mlnb.exceptions import MlnbError, MlnbWarning

__all__ = ["INTERRUPTED", "exit_code", "fail"]

#: the exit code of a command stopped with Ctrl-C (128 + SIGINT, as shells report it)
INTERRUPTED = 130


def fail(error: MlnbError) -> int:
    """Show ``error`` as one line on stderr; its exit code."""
    print(f"mlnb: error: {error}", file=sys.stderr)
    return error.exit_code


def exit_code(command: Callable[[], int]) -> int:
    """Run ``command`` and return its exit code, or the exit code of the error it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", MlnbWarning)
        warnings.showwarning = _show_warning
        try:
            return int(command())
        except MlnbError as exc:
            return fail(exc)
        except KeyboardInterrupt:
            return INTERRUPTED
        except Exception as exc:  # a full disk wherever it is met: one line, not a traceback
            from mlnb._disk import is_disk_full

            if not is_disk_full(exc):
                raise
            return fail(_disk_full(exc))


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """mlnb's own warnings as one line each (others as Python shows them)."""
    if issubclass(category, MlnbWarning):
        print(f"mlnb: warning: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def _disk_full(exc: BaseException) -> MlnbError:
    """Any full-disk error no store turned into one line: the folder it names, else the
    working or the project's folder when that disk is the full one, else the error itself."""
    from pathlib import Path

    from mlnb._disk import disk_full_error, failed_folder, free_bytes
    from mlnb._text import first_line
    from mlnb.exceptions import DiskFullError

    folder = failed_folder(exc)
    if folder is not None:
        return disk_full_error(folder)
    candidates = [Path.cwd()]
    try:
        from mlnb.config import get_settings

        candidates.append(get_settings().home)
    except Exception:
        pass
    for candidate in candidates:
        free = free_bytes(candidate)
        if free is not None and free < 1024 * 1024:
            return disk_full_error(candidate)
    return DiskFullError(
        f"no space left on a disk this command writes to ({first_line(exc)}); free some "
        "space there and run the command again."
    )
