"""``mlnb export``: a notebook's ``mlnb:export`` cells become a FastAPI service folder
(:func:`mlnb.export.export_notebook`), and what was pinned, exposed and verified is listed."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mlnb.cli._command import Commands

if TYPE_CHECKING:
    from mlnb.export import ExportResult

__all__ = ["describe_export", "register"]

#: what the service pins, as listed: (label, the metadata's list, the field naming the source)
_PINNED = (
    ("model", "models", "resolved"),
    ("file", "files", "source"),
    ("version", "versions", "resolved"),
)


def register(commands: Commands) -> None:
    commands.add(
        "export",
        "turn a notebook's mlnb:export cells into a FastAPI service",
        export,
        _export_options,
    )


def _export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook")
    parser.add_argument("-o", "--output", required=True, help="service folder to write")
    parser.add_argument("--force", action="store_true", help="replace an earlier export")
    parser.add_argument(
        "--parity", action="store_true", help="also check answers against the notebook"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip starting the service")
    parser.add_argument(
        "--profile", metavar="PATH", help="training data profile (default: the model run's)"
    )
    parser.add_argument(
        "--challenger", metavar="MODEL_URI", help="second model (models:/NAME/VERSION|@ALIAS)"
    )
    parser.add_argument(
        "--routing", choices=["shadow", "canary", "off"], help="use of the challenger (shadow)"
    )
    parser.add_argument("--canary-weight", type=float, help="share of traffic in canary (0.1)")
    parser.add_argument("--follow", metavar="ALIAS", help="reload when this alias moves (champion)")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="let the service load pickled models and files (they run code when loaded)",
    )


def export(args: argparse.Namespace) -> int:
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
    print(f"exported {args.notebook} to {result.folder}")
    for line in describe_export(result):
        print(f"  {line}")
    print(f"serve it:  mlnb serve {result.folder}")
    return 0


def describe_export(result: ExportResult) -> Iterator[str]:
    """What the service folder holds, one line each: signature, pinned models, files and
    versions, endpoints, the challenger and its routing, the alias followed, the profile,
    the example answers verified and the parity check."""
    meta = result.metadata
    if meta.get("signature"):
        yield f"signed    with MLNB_SIGNING_KEY (key id {meta['signature']['key_id']})"
    for label, field, source in _PINNED:
        for item in meta.get(field) or []:
            yield f"{label:<9} {item[source]}  pinned as {item['path']} ({item['hash'][:12]})"
    for endpoint in meta["endpoints"]:
        kind, function = endpoint["kind"], endpoint["function"]
        yield f"endpoint  POST {endpoint['path']}  ({kind}, from {function})"
    if meta.get("challenger"):
        challenger = meta["challenger"]
        yield (
            f"challenger {challenger['resolved']}  pinned as {challenger['path']} "
            f"({meta.get('routing') or 'shadow'})"
        )
    if meta.get("follow"):
        yield f"follows   @{meta['follow']} (reloads when the alias moves)"
    if meta.get("profile"):
        yield f"profile   {meta['profile']} (defaults, range checks and drift)"
    for path, answer in result.answers.items():
        shown = answer.get("predictions", answer) if isinstance(answer, dict) else answer
        yield f"verified  POST {path} with the example -> 200 {str(shown)[:80]}"
    if result.parity is not None:
        yield "parity    the service answers as the notebook's own predict(example)"
