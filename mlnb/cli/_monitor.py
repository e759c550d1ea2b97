"""``mlnb monitor report``: the HTML drift report of a service folder's audit log or of a
running service, against the training profile (:mod:`mlnb.monitor`)."""

from __future__ import annotations

import argparse

from mlnb.cli._command import Commands

__all__ = ["register"]

#: the report ``mlnb monitor report`` writes unless told otherwise (-o)
REPORT_FILE = "drift-report.html"


def register(commands: Commands) -> None:
    monitor = commands.group("monitor", "drift of live inputs against the training profile")
    monitor.add(
        "report",
        "HTML drift report of a service folder's audit log, or of a running service",
        report,
        _report_options,
    )


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="DIR|URL", help="exported service folder or service URL")
    parser.add_argument("-o", "--output", default=REPORT_FILE, help="HTML file to write")
    parser.add_argument(
        "--last", type=int, default=None, metavar="N", help="only the newest N rows"
    )
    parser.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when a feature drifted"
    )
    parser.add_argument("--profile", metavar="PATH", help="profile (default: DIR/profile.json)")


def report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlnb.exceptions import MonitorError
    from mlnb.monitor import DEFAULT_MIN_SAMPLES, describe_drift, render_html, report_from_source

    drift, profile = report_from_source(args.source, args.last, args.profile)
    output = Path(args.output)
    page = render_html(drift, profile, title=f"mlnb drift report: {args.source}")
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise MonitorError(f"cannot write {output}: {exc.strerror}; choose another -o.") from None
    print(
        f"{drift.n} live row(s) against profile {drift.profile!r}: {len(drift.drifted)} of "
        f"{len(drift.features)} feature(s) drifted; report in {output}"
    )
    for line in describe_drift(drift):
        print(f"  {line}")
    if drift.n < DEFAULT_MIN_SAMPLES:
        print(f"  fewer than {DEFAULT_MIN_SAMPLES} live rows: no feature is flagged yet")
    return 1 if args.fail_on_drift and drift.drifted else 0
