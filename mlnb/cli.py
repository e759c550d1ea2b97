"""The ``mlnb`` command. Each subcommand parses its arguments and calls the library.

Exit codes come from the exception raised (``MlnbError.exit_code``), mapped here only.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from mlnb._version import __version__
from mlnb.exceptions import MlnbError, MlnbWarning

__all__ = ["main"]


def _cmd_init(args: argparse.Namespace) -> int:
    from mlnb.config import get_settings, init_project
    from mlnb.tracking import describe_status, ensure_store

    for line in init_project():
        print(line)
    status = ensure_store(get_settings().tracking_uri)  # create and migrate it now
    if status is not None:
        took = f" in {status.seconds:.2f} s" if status.created else ""
        verb = "created " if status.created else "exists  "
        print(f"{verb} {status.path} ({describe_status(status)}){took}")
    print("next: run a notebook with `%load_ext mlnb`, then `mlnb ui` to see its runs")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from mlnb.config import get_settings
    from mlnb.tracking import check_store, describe_status, repair_store, store_path

    settings = get_settings()
    path = store_path(settings.tracking_uri)
    if path is None:
        print(f"tracking {settings.tracking_uri}: not a SQLite store, nothing to check here")
        return 0
    if args.repair:
        for line in repair_store(settings.tracking_uri).lines():
            print(line)
        return 0
    status = check_store(path)
    if status.state in {"missing", "ready"}:
        print(f"store    {path}: {describe_status(status)}")
        return 0
    raise status.error()


def _cmd_sync(args: argparse.Namespace) -> int:
    from mlnb.tracking import sync

    result = sync()
    killed = (
        f"; {result['killed']} run(s) of dead processes marked KILLED" if result["killed"] else ""
    )
    print(f"sent {result['sent']} journaled write(s){killed}; {result['remaining']} left")
    return 0 if result["remaining"] == 0 else 3


def _cmd_status(args: argparse.Namespace) -> int:
    from mlnb.config import get_settings
    from mlnb.tracking._journal import pending_entries

    settings = get_settings()
    print(f"root       {settings.root}")
    print(f"tracking   {settings.tracking_uri}  [{settings.sources.get('tracking_uri')}]")
    if settings.embedded:
        print(f"artifacts  {settings.artifact_root}")
    pending = pending_entries(settings.journal_dir)
    print(f"journal    {pending} write(s) not sent yet" + ("; run `mlnb sync`" if pending else ""))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from mlnb.tracking._read import describe_run

    print(describe_run(args.run_id, experiment=args.experiment))
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    import os
    import subprocess

    from mlnb.config import get_settings
    from mlnb.tracking import ensure_store

    settings = get_settings()
    if settings.is_remote:
        print(f"tracking goes to a server: open {settings.tracking_uri} in a browser")
        return 0
    ensure_store(settings.tracking_uri)  # made whole before `mlflow ui` opens it
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
        args.notebook,
        args.output,
        force=args.force,
        parity=args.parity,
        verify=not args.no_verify,
        profile=args.profile,
        challenger=args.challenger,
        routing=args.routing,
        canary_weight=args.canary_weight,
        follow=args.follow,
        allow_pickle=args.allow_pickle,
    )
    meta = result.metadata
    print(f"exported {args.notebook} to {result.folder}")
    if meta.get("signature"):
        print(f"  signed    with MLNB_SIGNING_KEY (key id {meta['signature']['key_id']})")
    for model in meta["models"]:
        print(f"  model     {model['resolved']}  pinned as {model['path']} ({model['hash'][:12]})")
    for item in meta.get("files") or []:
        print(f"  file      {item['source']}  pinned as {item['path']} ({item['hash'][:12]})")
    for item in meta.get("versions") or []:
        print(f"  version   {item['resolved']}  pinned as {item['path']} ({item['hash'][:12]})")
    for endpoint in meta["endpoints"]:
        kind, function = endpoint["kind"], endpoint["function"]
        print(f"  endpoint  POST {endpoint['path']}  ({kind}, from {function})")
    if meta.get("challenger"):
        challenger = meta["challenger"]
        print(
            f"  challenger {challenger['resolved']}  pinned as {challenger['path']} "
            f"({meta.get('routing') or 'shadow'})"
        )
    if meta.get("follow"):
        print(f"  follows   @{meta['follow']} (reloads when the alias moves)")
    if meta.get("profile"):
        print(f"  profile   {meta['profile']} (defaults, range checks and drift)")
    for path, answer in result.answers.items():
        shown = answer.get("predictions", answer) if isinstance(answer, dict) else answer
        print(f"  verified  POST {path} with the example -> 200 {str(shown)[:80]}")
    if result.parity is not None:
        print("  parity    the service answers as the notebook's own predict(example)")
    print(f"serve it:  mlnb serve {result.folder}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlnb.serve import serve

    serve(
        args.folder,
        host=args.host,
        port=args.port,
        workers=args.workers,
        timeout_header_read=args.timeout_header_read,
        timeout_keep_alive=args.timeout_keep_alive,
        limit_concurrency=args.limit_concurrency,
        http=args.http,
    )
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


def _cmd_monitor_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlnb.exceptions import MonitorError
    from mlnb.monitor import DEFAULT_MIN_SAMPLES
    from mlnb.monitor._report import describe, read_source, render_html

    report, profile = read_source(args.source, args.last, args.profile)
    output = Path(args.output)
    page = render_html(report, profile, title=f"mlnb drift report: {args.source}")
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise MonitorError(f"cannot write {output}: {exc.strerror}; choose another -o.") from None
    print(
        f"{report.n} live row(s) against profile {report.profile!r}: {len(report.drifted)} of "
        f"{len(report.features)} feature(s) drifted; report in {output}"
    )
    for line in describe(report):
        print(f"  {line}")
    if report.n < DEFAULT_MIN_SAMPLES:
        print(f"  fewer than {DEFAULT_MIN_SAMPLES} live rows: no feature is flagged yet")
    return 1 if args.fail_on_drift and report.drifted else 0


def _gate_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "slices": args.slice or [],
        "metric": args.metric,
        "tolerance": args.tolerance,
        "slice_tolerance": args.slice_tolerance,
        "max_slice_gap": args.max_slice_gap,
        "min_slice_rows": args.min_slice_rows,
        "noise": args.noise,
        "max_flip_rate": args.max_flip_rate,
        "leakage_threshold": args.leakage_threshold,
        "seed": args.seed,
    }


def _cmd_gates(args: argparse.Namespace) -> int:
    from mlnb.gates import run_gates

    against = None if args.against.lower() == "none" else args.against
    report = run_gates(
        args.model_uri,
        against=against,
        data=args.data,
        target=args.target,
        record=not args.no_record,
        **_gate_options(args),
    )
    print(report.to_json() if args.json else report.render())
    report.raise_if_failed()  # GatesFailed: its own exit code
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from mlnb.exceptions import GateError, GatesFailed
    from mlnb.gates import GateReport, promote

    if not args.yes and not sys.stdin.isatty():
        raise GateError(
            "mlnb promote asks a person to confirm and stdin is not a terminal; run it in a "
            "terminal, or pass --yes to promote without asking. Nothing changed."
        )

    def confirm(question: str, report: GateReport | None) -> bool:
        if report is not None:
            print(report.render(), end="\n\n")
        if args.yes:
            return True
        try:
            answer = input(f"{question} [y/N] ")
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    try:
        result = promote(
            args.name,
            args.version,
            data=args.data,
            target=args.target,
            skip_gates=args.skip_gates,
            confirm=confirm,
            **_gate_options(args),
        )
    except GatesFailed as exc:
        if isinstance(exc.report, GateReport):
            print(exc.report.render(), end="\n\n")
        raise
    print(result.describe())
    if result.changed:
        print(f"undo with: mlnb rollback {result.name}")
    return 0 if result.changed else 1


def _cmd_rollback(args: argparse.Namespace) -> int:
    from mlnb.gates import rollback

    result = rollback(args.name)
    print(f"rolled back {result.describe()}")
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

    add("init", _cmd_init, "create .mlnb/ and the MLflow store, and show where runs go")
    doc = add("doctor", _cmd_doctor, "check the local MLflow store; --repair fixes a broken one")
    doc.add_argument(
        "--repair",
        action="store_true",
        help="repair a half-migrated or outdated store (a backup is kept)",
    )
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
    exp.add_argument(
        "--profile", metavar="PATH", help="training data profile (default: the model run's)"
    )
    exp.add_argument(
        "--challenger", metavar="MODEL_URI", help="second model (models:/NAME/VERSION|@ALIAS)"
    )
    exp.add_argument(
        "--routing", choices=["shadow", "canary", "off"], help="use of the challenger (shadow)"
    )
    exp.add_argument("--canary-weight", type=float, help="share of traffic in canary (0.1)")
    exp.add_argument("--follow", metavar="ALIAS", help="reload when this alias moves (champion)")
    exp.add_argument(
        "--allow-pickle",
        action="store_true",
        help="let the service load pickled models and files (they run code when loaded)",
    )
    srv = add("serve", _cmd_serve, "run an exported service with uvicorn")
    srv.add_argument("folder")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--workers", type=int, default=1)
    srv.add_argument(
        "--timeout-header-read",
        type=float,
        metavar="SECONDS",
        help="close a connection whose request headers are not complete within this "
        "(MLNB_TIMEOUT_HEADER_READ; 10)",
    )
    srv.add_argument(
        "--timeout-keep-alive",
        type=float,
        metavar="SECONDS",
        help="close an idle kept-alive connection after this (MLNB_TIMEOUT_KEEP_ALIVE; 5)",
    )
    srv.add_argument(
        "--limit-concurrency",
        type=int,
        metavar="N",
        help="connections per worker; past it a 503 with Retry-After (MLNB_LIMIT_CONCURRENCY;"
        " default: below the open-files limit, at most 10000)",
    )
    srv.add_argument(
        "--http", choices=["auto", "h11", "httptools"], default="auto", help="HTTP parser (auto)"
    )
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
    mon = sub.add_parser("monitor", help="drift of live inputs against the training profile")
    msub = mon.add_subparsers(dest="monitor_command", metavar="COMMAND")
    msub.required = True
    text = "HTML drift report of a service folder's audit log, or of a running service"
    rep = msub.add_parser("report", help=text, description=text)
    rep.add_argument("source", metavar="DIR|URL", help="exported service folder or service URL")
    rep.add_argument("-o", "--output", default="drift-report.html", help="HTML file to write")
    rep.add_argument("--last", type=int, default=None, metavar="N", help="only the newest N rows")
    rep.add_argument("--fail-on-drift", action="store_true", help="exit 1 when a feature drifted")
    rep.add_argument("--profile", metavar="PATH", help="profile (default: DIR/profile.json)")
    rep.set_defaults(func=_cmd_monitor_report)
    sch = add("schedule", _cmd_schedule, "run pipelines on cron schedules (UTC)")
    sch.add_argument("action", choices=["add", "list", "remove", "run"])
    sch.add_argument("pipeline", nargs="?", help="pipeline file (add) or schedule id (remove)")
    sch.add_argument("--cron", help="cron expression, e.g. '*/15 * * * *'")
    gates_help = "promotion gates of a model against the champion on holdout data"
    gat = add("gates", _cmd_gates, gates_help)
    gat.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME/VERSION, runs:/…")
    gat.add_argument(
        "--against", default="champion", help="champion (default), another alias, a URI, or none"
    )
    pro = add("promote", _cmd_promote, "run the gates, ask, and make a version the champion")
    pro.add_argument("name", metavar="NAME", help="registered model")
    pro.add_argument("version", metavar="VERSION")
    pro.add_argument("--yes", "-y", action="store_true", help="promote without asking")
    pro.add_argument("--skip-gates", action="store_true", help="promote without the gates")
    for p in (gat, pro):
        p.add_argument("--data", metavar="HOLDOUT", help=".csv/.parquet file or versioned name")
        p.add_argument("--target", metavar="COLUMN", help="the label column of the holdout")
        p.add_argument(
            "--slice", action="append", metavar="COLUMN", help="metrics per value (repeatable)"
        )
        p.add_argument("--metric", help="accuracy, f1, roc_auc, … r2, rmse, mae (by the task)")
        p.add_argument(
            "--tolerance", type=float, default=0.01, help="allowed metric drop: %(default)s"
        )
        p.add_argument(
            "--slice-tolerance", type=float, default=0.05, help="allowed slice drop: %(default)s"
        )
        p.add_argument(
            "--max-slice-gap",
            type=float,
            default=0.1,
            help="best minus worst slice (fairness): %(default)s",
        )
        p.add_argument(
            "--min-slice-rows", type=int, default=20, help="smaller slices not gated: %(default)s"
        )
        p.add_argument(
            "--noise", type=float, default=0.01, help="noise, in feature stds: %(default)s"
        )
        p.add_argument(
            "--max-flip-rate",
            type=float,
            default=0.02,
            help="allowed share of changed answers: %(default)s",
        )
        p.add_argument(
            "--leakage-threshold",
            type=float,
            default=0.99,
            help="warn above this score: %(default)s",
        )
        p.add_argument("--seed", type=int, default=0, help="seed of the noise: %(default)s")
    gat.add_argument("--json", action="store_true", help="print the report as JSON")
    gat.add_argument("--no-record", action="store_true", help="do not write it to the run")
    rb = add("rollback", _cmd_rollback, "move the champion alias back to the previous version")
    rb.add_argument("name", metavar="NAME", help="registered model")
    ui = add("ui", _cmd_ui, "open the MLflow UI on this project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", MlnbWarning)
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args))
        except MlnbError as exc:
            print(f"mlnb: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # a full disk wherever it is met: one line, not a traceback
            from mlnb._disk import is_disk_full

            if not is_disk_full(exc):
                raise
            error = _disk_full(exc)
            print(f"mlnb: error: {error}", file=sys.stderr)
            return error.exit_code


def run() -> int:
    """The ``mlnb`` command: :func:`main`, then a quick exit. With MLflow loaded, the
    garbage collection that ends the interpreter takes about a second (measured 0.9-1.1 s
    here); nothing is left to collect that matters once the command is done, so the
    objects are frozen out of that last pass. Exit handlers still run."""
    code = main()
    import gc

    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
