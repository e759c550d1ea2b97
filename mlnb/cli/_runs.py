"""``mlnb show``: what a run recorded (:mod:`mlnb.tracking`)."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    commands.add("show", "print a run's params, metrics, tags and artifacts", show, _show_options)


def _show_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", nargs="?", help="run id (default: the latest run)")
    parser.add_argument("--experiment", "-e", help="latest run of this experiment")


def show(args: argparse.Namespace) -> int:
    from mlnb.tracking import describe_run

    print(describe_run(args.run_id, experiment=args.experiment))
    return 0
