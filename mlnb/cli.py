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
    return subprocess.call(command, env={**os.environ})


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
