"""The ``mlnb`` command. Each subcommand parses its arguments and calls the library.

Exit codes come from the exception raised (``MlnbError.exit_code``), mapped here only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mlnb._version import __version__
from mlnb.exceptions import MlnbError

__all__ = ["main"]


def _cmd_init(args: argparse.Namespace) -> int:
    from mlnb.config import init_project

    for line in init_project():
        print(line)
    print("next: run a notebook with `%load_ext mlnb`, then `mlnb ui` to see its runs")
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    from mlnb.tracking import sync

    result = sync()
    print(f"sent {result['sent']} journaled write(s); {result['remaining']} left")
    return 0 if result["remaining"] == 0 else 3


def _cmd_status(args: argparse.Namespace) -> int:
    from mlnb.config import get_settings
    from mlnb.tracking._outbox import Outbox

    settings = get_settings()
    print(f"root       {settings.root}")
    print(f"tracking   {settings.tracking_uri}  [{settings.sources.get('tracking_uri')}]")
    if settings.embedded:
        print(f"artifacts  {settings.artifact_root}")
    pending = len(Outbox(settings.outbox_dir))
    print(f"outbox     {pending} journaled write(s)" + ("; run `mlnb sync`" if pending else ""))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from mlnb.runs import describe_run

    print(describe_run(args.run_id, experiment=args.experiment))
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from mlnb.config import get_settings

    settings = get_settings()
    if settings.is_remote:
        print(f"tracking goes to a server: open {settings.tracking_uri} in a browser")
        return 0
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", settings.tracking_uri,
        "--default-artifact-root", str(settings.artifact_root),
        "--host", args.host, "--port", str(args.port),
    ]  # fmt: skip
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C stops it)")
    # MLflow's background job runner (8 huey processes) serves GenAI jobs mlnb never uses.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    return subprocess.call(command, env=env)


def _cmd_version(args: argparse.Namespace) -> int:
    from mlnb.versioning import version

    record = version(args.path, args.name, role="output" if args.output else "input", run=False)
    print(f"{record.name}@{record.number}  {record.hash}  {record.kind}  {record.size} bytes")
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    import datetime
    import json

    from mlnb.versioning import versions

    records = versions(args.name)
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=1))
        return 0
    print(f"{'VERSION':<8} {'HASH':<16} {'CREATED':<20} {'SIZE':>12}  {'KIND':<10} RUN")
    for r in records:
        created = datetime.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        size = f"{r.size:,}" if r.size is not None else "?"
        run = r.run_id or "-"
        print(f"@{r.number:<7} {r.hash[:16]:<16} {created:<20} {size:>12}  {r.kind:<10} {run}")
    return 0


def _cmd_checkout(args: argparse.Namespace) -> int:
    from mlnb.versioning import checkout

    target = checkout(args.ref, args.output, force=args.force)
    print(f"restored {args.ref} to {target}")
    return 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    import json

    from mlnb.versioning import lineage, render_lineage

    doc = lineage(args.ref)
    print(json.dumps(doc, indent=1) if args.json else render_lineage(doc))
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from mlnb.versioning import push

    result = push(args.remote, args.name or None, verify=args.verify)
    print(
        f"pushed {len(result.sent)} object(s) ({result.bytes:,} bytes) and "
        f"{result.records} record(s) to {result.remote}; {result.skipped} already there"
    )
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from mlnb.versioning import pull

    result = pull(args.remote, args.name or None)
    print(
        f"pulled {len(result.sent)} object(s) ({result.bytes:,} bytes) and "
        f"{result.records} record(s) from {result.remote}; {result.skipped} already here"
    )
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from mlnb.versioning import gc

    result = gc(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for digest in result.removed:
        print(f"{verb} {digest[:16]}")
    print(f"{verb} {len(result.removed)} object(s), {result.freed:,} bytes; kept {result.kept}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from mlnb.export import export_notebook

    result = export_notebook(
        args.notebook, args.output, force=args.force, parity=args.parity, verify=not args.no_verify
    )
    meta = result.metadata
    print(f"exported {args.notebook} to {result.folder}")
    for model in meta["models"]:
        print(f"  model     {model['resolved']}  pinned as {model['path']} ({model['hash'][:12]})")
    for endpoint in meta["endpoints"]:
        kind, function = endpoint["kind"], endpoint["function"]
        print(f"  endpoint  POST {endpoint['path']}  ({kind}, from {function})")
    for path, answer in result.answers.items():
        shown = answer.get("predictions", answer) if isinstance(answer, dict) else answer
        print(f"  verified  POST {path} with the example -> 200 {str(shown)[:80]}")
    if result.parity is not None:
        print("  parity    the service answers as the notebook's own predict(example)")
    print(f"serve it:  mlnb serve {result.folder}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlnb.serve import serve

    serve(args.folder, host=args.host, port=args.port, workers=args.workers)
    return 0


def _cmd_pipeline_run(args: argparse.Namespace, resume: bool = False) -> int:
    from mlnb.pipeline import parse_overrides, run_pipeline

    result = run_pipeline(
        args.pipeline,
        parse_overrides(args.param),
        force=getattr(args, "force", False),
        only=getattr(args, "only", None),
        from_step=getattr(args, "from_step", None),
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


def _cmd_pipeline_status(args: argparse.Namespace) -> int:
    from mlnb.pipeline import parse_overrides, pipeline_status

    for row in pipeline_status(args.pipeline, parse_overrides(args.param)):
        state = "up to date" if row["up_to_date"] else "; ".join(row["reasons"])
        print(f"{row['step']:<16} {state}")
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlnb.pipeline import _schedule

    if args.action == "add":
        if not args.pipeline or not args.cron:
            raise SystemExit("mlnb schedule add PIPELINE --cron 'EXPR'")
        item = _schedule.add_schedule(Path(args.pipeline), args.cron)
        print(f"added schedule {item.id}: {item.pipeline} at '{item.cron}' (UTC)")
    elif args.action == "list":
        for item in _schedule.list_schedules():
            print(f"{item.id}  {item.cron:<20} {item.pipeline}")
    elif args.action == "remove":
        _schedule.remove_schedule(args.pipeline)
        print(f"removed schedule {args.pipeline}")
    else:
        from mlnb.pipeline import run_pipeline

        def run(path: Path) -> int:
            try:
                return 0 if run_pipeline(path).ok else 1
            except MlnbError as exc:
                print(f"mlnb: error: {exc}", file=sys.stderr)
                return exc.exit_code

        print("scheduler running (UTC); Ctrl-C stops it")
        _schedule.run_scheduler(run)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlnb", description="Production-first notebooks: tracking, pipelines, services."
    )
    parser.add_argument("--version", action="version", version=f"mlnb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    add("init", _cmd_init, "create .mlnb/ in the project and show where runs go")
    add("sync", _cmd_sync, "send writes journaled while the tracking server was down")
    add("status", _cmd_status, "show the project root, tracking URI and journaled writes")
    show = add("show", _cmd_show, "print a run's params, metrics, tags and artifacts")
    show.add_argument("run_id", nargs="?", help="run id (default: the latest run)")
    show.add_argument("--experiment", "-e", help="latest run of this experiment")
    ver = add("version", _cmd_version, "store a file or folder by content hash under a name")
    ver.add_argument("path")
    ver.add_argument("--name", "-n", help="version name (default: the path)")
    ver.add_argument("--output", action="store_true", help="record it as an output")
    vers = add("versions", _cmd_versions, "list the versions of a name")
    vers.add_argument("name")
    vers.add_argument("--json", action="store_true")
    co = add("checkout", _cmd_checkout, "restore a version: NAME, NAME@3 or NAME@<hash>")
    co.add_argument("ref", metavar="NAME[@VERSION]")
    co.add_argument("-o", "--output", help="where to write it (default: where it came from)")
    co.add_argument("--force", action="store_true", help="overwrite unversioned changes")
    lin = add("lineage", _cmd_lineage, "what produced a version and what used it")
    lin.add_argument("ref", metavar="NAME[@VERSION]")
    lin.add_argument("--json", action="store_true")
    for verb, func, text in (
        ("push", _cmd_push, "copy missing objects and records to a remote (fsspec URL)"),
        ("pull", _cmd_pull, "fetch records and missing objects from a remote"),
    ):
        p = add(verb, func, text)
        p.add_argument("remote", nargs="?", help="file:///…, s3://…  (default: [tool.mlnb] remote)")
        p.add_argument("--name", "-n", action="append", help="only this name (repeatable)")
        if verb == "push":
            p.add_argument(
                "--verify", action="store_true", help="re-hash objects already on the remote"
            )
    gcp = add("gc", _cmd_gc, "remove stored objects that no version refers to")
    gcp.add_argument("--dry-run", action="store_true", help="only list them")
    exp = add("export", _cmd_export, "turn a notebook's mlnb:export cells into a FastAPI service")
    exp.add_argument("notebook")
    exp.add_argument("-o", "--output", required=True, help="service folder to write")
    exp.add_argument("--force", action="store_true", help="replace an earlier export")
    exp.add_argument(
        "--parity", action="store_true", help="also check answers against the notebook"
    )
    exp.add_argument("--no-verify", action="store_true", help="skip starting the service")
    srv = add("serve", _cmd_serve, "run an exported service with uvicorn")
    srv.add_argument("folder")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--workers", type=int, default=1)
    pipe = sub.add_parser("pipeline", help="run a DAG of notebooks (pipeline.yaml)")
    psub = pipe.add_subparsers(dest="pipeline_command", metavar="COMMAND")
    psub.required = True
    for verb, text in (
        ("run", "run the steps whose code, params, inputs or upstream changed"),
        ("resume", "re-run the failed steps and what depends on them"),
        ("status", "which steps are up to date, and why not"),
    ):
        p = psub.add_parser(verb, help=text, description=text)
        p.add_argument("pipeline", nargs="?", default="pipeline.yaml")
        p.add_argument("-p", "--param", action="append", metavar="STEP.KEY=VALUE")
        if verb == "status":
            p.set_defaults(func=_cmd_pipeline_status)
            continue
        p.add_argument("--workers", "-w", type=int, default=1, help="steps run at the same time")
        p.add_argument(
            "--executor", default="local", help="local, or dask://HOST:PORT for a Dask cluster"
        )
        if verb == "run":
            p.add_argument("--force", action="store_true", help="run every step")
            p.add_argument("--only", metavar="STEP", help="run only this step")
            p.add_argument("--from", dest="from_step", metavar="STEP", help="this step and after")
        p.set_defaults(func=_cmd_pipeline_run)
    sch = add("schedule", _cmd_schedule, "run pipelines on cron schedules (UTC)")
    sch.add_argument("action", choices=["add", "list", "remove", "run"])
    sch.add_argument("pipeline", nargs="?", help="pipeline file (add) or schedule id (remove)")
    sch.add_argument("--cron", help="cron expression, e.g. '*/15 * * * *'")
    ui = add("ui", _cmd_ui, "open the MLflow UI on this project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MlnbError as exc:
        print(f"mlnb: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
