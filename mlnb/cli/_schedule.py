"""``mlnb schedule add|list|remove|run``: pipelines on cron schedules, in UTC
(:mod:`mlnb.pipeline`'s scheduler)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlnb.cli._command import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    commands.add("schedule", "run pipelines on cron schedules (UTC)", schedule, _schedule_options)


def _schedule_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["add", "list", "remove", "run"])
    parser.add_argument("pipeline", nargs="?", help="pipeline file (add) or schedule id (remove)")
    parser.add_argument("--cron", help="cron expression, e.g. '*/15 * * * *'")


def schedule(args: argparse.Namespace) -> int:
    from mlnb.pipeline import add_schedule, list_schedules, remove_schedule, run_scheduler

    if args.action == "add":
        if not args.pipeline or not args.cron:
            raise SystemExit("mlnb schedule add PIPELINE --cron 'EXPR'")
        item = add_schedule(Path(args.pipeline), args.cron)
        print(f"added schedule {item.id}: {item.pipeline} at '{item.cron}' (UTC)")
    elif args.action == "list":
        for item in list_schedules():
            print(f"{item.id}  {item.cron:<20} {item.pipeline}")
    elif args.action == "remove":
        remove_schedule(args.pipeline)
        print(f"removed schedule {args.pipeline}")
    else:
        print("scheduler running (UTC); Ctrl-C stops it")
        run_scheduler(run_due)
    return 0


def run_due(path: Path) -> int:
    """One due pipeline run of the scheduler: its exit code (an error is one line and the
    scheduler goes on)."""
    from mlnb.cli._errors import fail
    from mlnb.exceptions import MlnbError
    from mlnb.pipeline import run_pipeline

    try:
        return 0 if run_pipeline(path).ok else 1
    except MlnbError as exc:
        return fail(exc)
