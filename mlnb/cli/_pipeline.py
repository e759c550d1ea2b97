"""``mlnb pipeline run``, ``resume`` and ``status``: a DAG of notebooks
(:mod:`mlnb.pipeline`), with the runner's own defaults."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands, defaults_of

__all__ = ["SPEC_FILE", "register"]

#: the pipeline file the commands read unless given one
SPEC_FILE = "pipeline.yaml"


def register(commands: Commands) -> None:
    pipeline = commands.group("pipeline", f"run a DAG of notebooks ({SPEC_FILE})")
    pipeline.add(
        "run", "run the steps whose code, params, inputs or upstream changed", run, _run_options
    )
    pipeline.add("resume", "re-run the failed steps and what depends on them", run, _resume_options)
    pipeline.add("status", "which steps are up to date, and why not", status, _status_options)


def _status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", nargs="?", default=SPEC_FILE)
    parser.add_argument("-p", "--param", action="append", metavar="STEP.KEY=VALUE")


def _resume_options(parser: argparse.ArgumentParser) -> None:
    from mlnb.pipeline import run_pipeline

    defaults = defaults_of(run_pipeline)
    _status_options(parser)
    parser.add_argument(
        "--workers", "-w", type=int, default=defaults["workers"], help="steps run at the same time"
    )
    parser.add_argument(
        "--executor",
        default=defaults["executor"],
        help="local, or dask://HOST:PORT for a Dask cluster",
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    _resume_options(parser)
    parser.add_argument("--force", action="store_true", help="run every step")
    parser.add_argument("--only", metavar="STEP", help="run only this step")
    parser.add_argument("--from", dest="from_step", metavar="STEP", help="this step and after")


def run(args: argparse.Namespace) -> int:
    """``run`` and ``resume`` (which has none of ``run``'s step choices: the runner's
    defaults, so the failed steps and their dependents run)."""
    from mlnb.pipeline import own_process, parse_overrides, run_pipeline

    own_process()  # no user code runs in this process
    defaults = defaults_of(run_pipeline)
    result = run_pipeline(
        args.pipeline,
        parse_overrides(args.param),
        force=getattr(args, "force", defaults["force"]),
        only=getattr(args, "only", defaults["only"]),
        from_step=getattr(args, "from_step", defaults["from_step"]),
        workers=args.workers,
        executor=args.executor,
    )
    counts: dict[str, int] = {}
    for step in result.steps.values():
        counts[step.status] = counts.get(step.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if result.run_id is None:
        print(f"pipeline {result.name}: {summary}; nothing to run")
    else:
        print(
            f"pipeline {result.name}: {summary}; run {result.run_id}; notebooks in {result.folder}"
        )
    return 0


def status(args: argparse.Namespace) -> int:
    from mlnb.pipeline import parse_overrides, pipeline_status

    for row in pipeline_status(args.pipeline, parse_overrides(args.param)):
        state = "up to date" if row["up_to_date"] else "; ".join(row["reasons"])
        print(f"{row['step']:<16} {state}")
    return 0
