"""One syntax tree at a time on the CPython versions that cannot build two at once.

CPython 3.11.0 to 3.11.7 and 3.12.0 to 3.12.1 keep the AST converter's recursion depth in
state that all threads share (gh-106905, fixed by gh-113035 in 3.11.8 and 3.12.2): two
threads converting a tree at the same moment can fail either one with ``SystemError: AST
constructor recursion depth mismatch``. mlnb imports MLflow and the model flavors in
background threads (the warm-up, the journal's sender), and importing parses
(``inspect.signature`` of a builtin calls ``ast.parse``), while IPython parses and compiles
the user's cell on the main thread: on those versions a cell could fail for no reason of
its own. Debian 12's Python is 3.11.2.

:func:`serialize_ast` makes ``ast.parse`` and an IPython shell's cell compiler take one
lock on the affected versions, and does nothing elsewhere. The functions keep their
signatures and results; only two trees are never built at once.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import threading
from typing import Any

__all__ = ["LOCK", "affected", "serialize_ast"]

#: held while a tree is built (re-entrant: a cell compiler's parse calls ast.parse)
LOCK = threading.RLock()


def _after_fork_in_child() -> None:
    """A child forked while another thread built a tree must not inherit the lock held
    (that thread does not exist in the child): it starts with a free one."""
    global LOCK
    LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def affected(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> bool:
    """Whether this CPython version has the race (gh-106905)."""
    return (3, 11) <= version < (3, 11, 8) or (3, 12) <= version < (3, 12, 2)


def serialize_ast(shell: Any = None) -> bool:
    """On an affected interpreter, make ``ast.parse`` (and ``shell``'s cell compiler, an
    IPython ``InteractiveShell``) build one tree at a time; True if it did. Idempotent."""
    if sys.implementation.name != "cpython" or not affected():
        return False
    with LOCK:
        if not getattr(ast.parse, "_mlnb_serialized", False):
            ast.parse = _locked(ast.parse)
        compiler = getattr(shell, "compile", None)
        if compiler is not None and not getattr(type(compiler), "_mlnb_serialized", False):
            compiler.__class__ = _serialized_compiler(type(compiler))
    return True


def _locked(function: Any) -> Any:
    @functools.wraps(function)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with LOCK:  # read at each call: a forked child has its own
            return function(*args, **kwargs)

    locked._mlnb_serialized = True  # type: ignore[attr-defined]
    return locked


_COMPILERS: dict[type, type] = {}


def _serialized_compiler(cls: type) -> type:
    """``cls`` (IPython's ``CachingCompiler``) whose parse and compile take :data:`LOCK`:
    a cell is parsed to a tree, then each of its statements is compiled from its tree."""
    if cls not in _COMPILERS:
        _COMPILERS[cls] = type(
            f"Serialized{cls.__name__}",
            (cls,),
            {
                "ast_parse": _locked(getattr(cls, "ast_parse")),  # noqa: B009 (any compiler)
                "__call__": _locked(cls.__call__),
                "_mlnb_serialized": True,
                "__module__": cls.__module__,
            },
        )
    return _COMPILERS[cls]
