"""``mlnb serve``: run an exported service with uvicorn (:func:`mlnb.serve.serve`), with the
service's own defaults."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands, defaults_of

__all__ = ["register"]


def register(commands: Commands) -> None:
    commands.add("serve", "run an exported service with uvicorn", serve, _serve_options)


def _serve_options(parser: argparse.ArgumentParser) -> None:
    from mlnb.serve import (
        DEFAULT_TIMEOUT_HEADER_READ,
        DEFAULT_TIMEOUT_KEEP_ALIVE,
        HTTP_CHOICES,
        MAX_DEFAULT_LIMIT,
    )
    from mlnb.serve import serve as run_service

    defaults = defaults_of(run_service)
    parser.add_argument("folder")
    parser.add_argument("--host", default=defaults["host"])
    parser.add_argument("--port", type=int, default=defaults["port"])
    parser.add_argument("--workers", type=int, default=defaults["workers"])
    parser.add_argument(
        "--timeout-header-read",
        type=float,
        metavar="SECONDS",
        help="close a connection whose request headers are not complete within this "
        f"(MLNB_TIMEOUT_HEADER_READ; {DEFAULT_TIMEOUT_HEADER_READ:g})",
    )
    parser.add_argument(
        "--timeout-keep-alive",
        type=float,
        metavar="SECONDS",
        help="close an idle kept-alive connection after this "
        f"(MLNB_TIMEOUT_KEEP_ALIVE; {DEFAULT_TIMEOUT_KEEP_ALIVE:g})",
    )
    parser.add_argument(
        "--limit-concurrency",
        type=int,
        metavar="N",
        help="connections per worker; past it a 503 with Retry-After (MLNB_LIMIT_CONCURRENCY;"
        f" default: below the open-files limit, at most {MAX_DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--http",
        choices=HTTP_CHOICES,
        default=defaults["http"],
        help="HTTP parser (%(default)s)",
    )


def serve(args: argparse.Namespace) -> int:
    from mlnb.serve import serve as run_service

    run_service(
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
