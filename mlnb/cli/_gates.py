"""``mlnb gates``, ``promote`` and ``rollback``: the promotion gates of a model version on
holdout data, and the human button that moves the champion alias (:mod:`mlnb.gates`).

The gates' thresholds are :func:`mlnb.gates.run_gates`'s options, with its defaults; the
same table adds them to both commands and hands them on, so none can be left behind."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlnb.cli._command import Commands, defaults_of

__all__ = ["GATE_OPTIONS", "register"]

#: run_gates' thresholds as options: (parameter, type, help before the default)
GATE_OPTIONS: tuple[tuple[str, type[float] | type[int], str], ...] = (
    ("tolerance", float, "allowed metric drop"),
    ("slice_tolerance", float, "allowed slice drop"),
    ("max_slice_gap", float, "best minus worst slice (fairness)"),
    ("min_slice_rows", int, "smaller slices not gated"),
    ("noise", float, "noise, in feature stds"),
    ("max_flip_rate", float, "allowed share of changed answers"),
    ("leakage_threshold", float, "warn above this score"),
    ("seed", int, "seed of the noise"),
)


def register(commands: Commands) -> None:
    commands.add(
        "gates",
        "promotion gates of a model against the champion on holdout data",
        gates,
        _gates_options,
    )
    commands.add(
        "promote",
        "run the gates, ask, and make a version the champion",
        promote,
        _promote_options,
    )
    commands.add(
        "rollback",
        "move the champion alias back to the previous version",
        rollback,
        _rollback_options,
    )


def _holdout_options(parser: argparse.ArgumentParser) -> None:
    """The holdout and the thresholds, shared by ``gates`` and ``promote``."""
    from mlnb.gates import run_gates

    defaults = defaults_of(run_gates)
    parser.add_argument("--data", metavar="HOLDOUT", help=".csv/.parquet file or versioned name")
    parser.add_argument("--target", metavar="COLUMN", help="the label column of the holdout")
    parser.add_argument(
        "--slice", action="append", metavar="COLUMN", help="metrics per value (repeatable)"
    )
    parser.add_argument("--metric", help="accuracy, f1, roc_auc, … r2, rmse, mae (by the task)")
    for name, kind, text in GATE_OPTIONS:
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=defaults[name],
            help=f"{text}: %(default)s",
        )


def _gate_options(args: argparse.Namespace) -> dict[str, Any]:
    """What ``run_gates`` takes from the command line besides the model and the holdout."""
    options: dict[str, Any] = {"slices": args.slice or [], "metric": args.metric}
    return options | {name: getattr(args, name) for name, _, _ in GATE_OPTIONS}


def _gates_options(parser: argparse.ArgumentParser) -> None:
    from mlnb.gates import run_gates

    parser.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME/VERSION, runs:/…")
    parser.add_argument(
        "--against",
        default=defaults_of(run_gates)["against"],
        help="champion (default), another alias, a URI, or none",
    )
    _holdout_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-record", action="store_true", help="do not write it to the run")


def gates(args: argparse.Namespace) -> int:
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


def _promote_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="registered model")
    parser.add_argument("version", metavar="VERSION")
    parser.add_argument("--yes", "-y", action="store_true", help="promote without asking")
    parser.add_argument("--skip-gates", action="store_true", help="promote without the gates")
    _holdout_options(parser)


def promote(args: argparse.Namespace) -> int:
    from mlnb.exceptions import GateError, GatesFailed
    from mlnb.gates import GateReport
    from mlnb.gates import promote as promote_version

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
        result = promote_version(
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


def _rollback_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="registered model")


def rollback(args: argparse.Namespace) -> int:
    from mlnb.gates import rollback as roll_back

    result = roll_back(args.name)
    print(f"rolled back {result.describe()}")
    return 0
