"""``mlnb version``, ``versions``, ``checkout``, ``lineage``, ``push``, ``pull`` and ``gc``:
the content-addressed store of data, models and configs (:mod:`mlnb.versioning`)."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands

__all__ = ["register"]


def register(commands: Commands) -> None:
    commands.add(
        "version",
        "store a file or folder by content hash under a name",
        version,
        _version_options,
    )
    commands.add("versions", "list the versions of a name", versions, _versions_options)
    commands.add(
        "checkout",
        "restore a version: NAME, NAME@3 or NAME@<hash>",
        checkout,
        _checkout_options,
    )
    commands.add("lineage", "what produced a version and what used it", lineage, _ref_options)
    commands.add(
        "push",
        "copy missing objects and records to a remote (fsspec URL)",
        push,
        _push_options,
    )
    commands.add("pull", "fetch records and missing objects from a remote", pull, _remote_options)
    commands.add("gc", "remove stored objects that no version refers to", gc, _gc_options)


def _version_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path")
    parser.add_argument("--name", "-n", help="version name (default: the path)")
    parser.add_argument("--output", action="store_true", help="record it as an output")


def version(args: argparse.Namespace) -> int:
    from mlnb.tracking import version as store_version

    role = "output" if args.output else "input"
    record = store_version(args.path, args.name, role=role, run=False)
    print(f"{record.name}@{record.number}  {record.hash}  {record.kind}  {record.size} bytes")
    return 0


def _versions_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--json", action="store_true")


def versions(args: argparse.Namespace) -> int:
    import datetime
    import json

    from mlnb.tracking import versions as list_versions

    records = list_versions(args.name)
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


def _checkout_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="NAME[@VERSION]")
    parser.add_argument("-o", "--output", help="where to write it (default: where it came from)")
    parser.add_argument("--force", action="store_true", help="overwrite unversioned changes")


def checkout(args: argparse.Namespace) -> int:
    from mlnb.versioning import checkout as restore

    target = restore(args.ref, args.output, force=args.force)
    print(f"restored {args.ref} to {target}")
    return 0


def _ref_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="NAME[@VERSION]")
    parser.add_argument("--json", action="store_true")


def lineage(args: argparse.Namespace) -> int:
    import json

    from mlnb.tracking import lineage as lineage_of
    from mlnb.versioning import render_lineage

    doc = lineage_of(args.ref)
    print(json.dumps(doc, indent=1) if args.json else render_lineage(doc))
    return 0


def _remote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "remote", nargs="?", help="file:///…, s3://…  (default: [tool.mlnb] remote)"
    )
    parser.add_argument("--name", "-n", action="append", help="only this name (repeatable)")


def _push_options(parser: argparse.ArgumentParser) -> None:
    _remote_options(parser)
    parser.add_argument(
        "--verify", action="store_true", help="re-hash objects already on the remote"
    )


def push(args: argparse.Namespace) -> int:
    from mlnb.versioning import push as send

    result = send(args.remote, args.name or None, verify=args.verify)
    print(
        f"pushed {len(result.sent)} object(s) ({result.bytes:,} bytes) and "
        f"{result.records} record(s) to {result.remote}; {result.skipped} already there"
    )
    return 0


def pull(args: argparse.Namespace) -> int:
    from mlnb.versioning import pull as fetch

    result = fetch(args.remote, args.name or None)
    print(
        f"pulled {len(result.sent)} object(s) ({result.bytes:,} bytes) and "
        f"{result.records} record(s) from {result.remote}; {result.skipped} already here"
    )
    return 0


def _gc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="only list them")


def gc(args: argparse.Namespace) -> int:
    from mlnb.versioning import gc as collect

    result = collect(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for digest in result.removed:
        print(f"{verb} {digest[:16]}")
    print(f"{verb} {len(result.removed)} object(s), {result.freed:,} bytes; kept {result.kept}")
    return 0
