"""The ``mlnb`` parser, built from the command modules in the order ``mlnb --help`` lists
them, and :func:`main`, which parses, runs the command and turns its errors into exit codes
(:mod:`mlnb.cli._errors`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mlnb._version import __version__
from mlnb.cli import (
    _export,
    _gates,
    _monitor,
    _pipeline,
    _project,
    _runs,
    _schedule,
    _serve,
    _ui,
    _versions,
)
from mlnb.cli._command import CommandParser, Commands
from mlnb.cli._errors import exit_code

__all__ = ["main", "parser", "run"]

#: the command modules, in the order of ``mlnb --help``
MODULES = (_project, _runs, _versions, _export, _serve, _pipeline, _monitor, _schedule, _gates, _ui)


def parser() -> argparse.ArgumentParser:
    """The ``mlnb`` parser: every command, each adding its options when it is used."""
    top = CommandParser(
        prog="mlnb", description="Production-first notebooks: tracking, pipelines, services."
    )
    top.add_argument("--version", action="version", version=f"mlnb {__version__}")
    commands = Commands(top, dest="command")
    for module in MODULES:
        module.register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mlnb ARGS`` (``argv``, default ``sys.argv[1:]``) in this process; the exit code."""
    args = parser().parse_args(argv)
    return exit_code(lambda: args.func(args))


def run() -> int:
    """The ``mlnb`` command: :func:`main`, then a quick exit. With MLflow loaded, the
    garbage collection that ends the interpreter takes about a second (measured 0.9-1.1 s
    here); nothing is left to collect that matters once the command is done, so the
    objects are frozen out of that last pass. Exit handlers still run."""
    code = main()
    import gc

    gc.freeze()
    return code
