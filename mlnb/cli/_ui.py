"""``mlnb ui``: MLflow's own UI on this project's store (or where the tracking server is)."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands

__all__ = ["HOST", "PORT", "register"]

#: where ``mlnb ui`` serves by default (MLflow's own defaults for ``mlflow ui``)
HOST = "127.0.0.1"
PORT = 5000


def register(commands: Commands) -> None:
    commands.add("ui", "open the MLflow UI on this project's store", ui, _ui_options)


def _ui_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument(
        "--workers", type=int, default=None, help="server worker processes (MLflow's default: 4)"
    )


def ui(args: argparse.Namespace) -> int:
    import os
    import subprocess
    import sys

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
        *(["--workers", str(args.workers)] if args.workers else []),
    ]  # fmt: skip
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C stops it)")
    # MLflow's background job runner (8 huey processes) serves GenAI jobs mlnb never uses.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    return subprocess.call(command, env=env)
