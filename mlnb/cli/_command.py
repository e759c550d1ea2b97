"""How a command module declares its commands: a name, a help line, the handler, and a
function adding its options, kept next to the handler.

A command's options are added only when that command is parsed or its help is shown
(:class:`CommandParser`), so a command whose defaults come from a heavy part of the library
(``mlnb serve`` reads them from :mod:`mlnb.serve`, which loads FastAPI) costs nothing to
the others; ``mlnb --help`` needs only the names and help lines.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Arguments", "CommandParser", "Commands", "Handler", "defaults_of"]

#: a command's handler: the parsed arguments in, the exit code out
Handler = Callable[[argparse.Namespace], int]
#: adds a command's options to its parser
Arguments = Callable[[argparse.ArgumentParser], None]


class CommandParser(argparse.ArgumentParser):
    """A parser whose options are added by ``arguments`` the first time it parses or shows
    its help or usage."""

    def __init__(self, *args: Any, arguments: Arguments | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arguments = arguments

    def _add_arguments(self) -> None:
        arguments, self._arguments = self._arguments, None
        if arguments is not None:
            arguments(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._add_arguments()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._add_arguments()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_arguments()
        return super().format_help()


class Commands:
    """The subcommands of one parser (``mlnb``, ``mlnb pipeline``, ``mlnb monitor``)."""

    def __init__(self, parser: argparse.ArgumentParser, dest: str) -> None:
        self._action = parser.add_subparsers(
            dest=dest, metavar="COMMAND", parser_class=CommandParser
        )
        self._action.required = True

    def add(
        self,
        name: str,
        help: str,
        handler: Handler,
        arguments: Arguments | None = None,
    ) -> None:
        """Command ``name`` (``help`` is its line in the list and its description) runs
        ``handler``; ``arguments`` adds its options when it is used."""
        parser = self._action.add_parser(name, help=help, description=help, arguments=arguments)
        parser.set_defaults(func=handler)

    def group(self, name: str, help: str) -> Commands:
        """Command ``name`` with subcommands of its own (``mlnb pipeline run``)."""
        parser = self._action.add_parser(name, help=help)
        return Commands(parser, dest=f"{name}_command")


def defaults_of(function: Callable[..., Any]) -> dict[str, Any]:
    """The defaults of ``function``'s parameters: the command's defaults are the library's,
    typed once (in the library)."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
