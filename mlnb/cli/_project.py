"""``mlnb init``, ``doctor``, ``sync`` and ``status``: the project folder, its MLflow store
and the journal of writes not sent yet (:mod:`mlnb.config`, :mod:`mlnb.tracking`)."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    commands.add("init", "create .mlnb/ and the MLflow store, and show where runs go", init)
    commands.add(
        "doctor",
        "check the local MLflow store; --repair fixes a broken one",
        doctor,
        _doctor_options,
    )
    commands.add("sync", "send writes journaled while the tracking server was down", sync)
    commands.add("status", "show the project root, tracking URI and journaled writes", status)


def init(args: argparse.Namespace) -> int:
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


def _doctor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repair",
        action="store_true",
        help="repair a half-migrated or outdated store (a backup is kept)",
    )


def doctor(args: argparse.Namespace) -> int:
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


def sync(args: argparse.Namespace) -> int:
    from mlnb.exceptions import TrackingUnavailableError
    from mlnb.tracking import sync as send_journal

    result = send_journal()
    killed = (
        f"; {result['killed']} run(s) of dead processes marked KILLED" if result["killed"] else ""
    )
    print(f"sent {result['sent']} journaled write(s){killed}; {result['remaining']} left")
    # writes left: the server is still out of reach, as when it cannot be reached at all
    return 0 if result["remaining"] == 0 else TrackingUnavailableError.exit_code


def status(args: argparse.Namespace) -> int:
    from mlnb.config import get_settings
    from mlnb.tracking import pending_entries

    settings = get_settings()
    print(f"root       {settings.root}")
    print(f"tracking   {settings.tracking_uri}  [{settings.sources.get('tracking_uri')}]")
    if settings.embedded:
        print(f"artifacts  {settings.artifact_root}")
    pending = pending_entries(settings.journal_dir)
    print(f"journal    {pending} write(s) not sent yet" + ("; run `mlnb sync`" if pending else ""))
    return 0
