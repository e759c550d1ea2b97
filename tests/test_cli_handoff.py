"""Each ``mlnb`` command hands every option on to the library function it calls, in this
process (``mlnb.cli.main``), so that an option parsed and then silently dropped fails here.

The library functions are replaced by recording spies: what is tested is the hand-off from
the command line to the library, not the library (its own tests run it for real, and
tests/test_cli.py and the packages' CLI tests run the commands end to end). A spy binds each
call to the real function's signature, so a call the real function would refuse fails too.
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import mlnb.cli
from mlnb.exceptions import ConfigError, VersionNotFoundError


@dataclass
class Spy:
    """Stands in for ``real`` (a library function): records each call's arguments, bound to
    ``real``'s signature, and returns ``returns``."""

    real: Callable[..., Any]
    returns: Any = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.__wrapped__ = self.real  # its signature is the real one's (inspect.signature)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signature = inspect.signature(self.real)
        bound = signature.bind(*args, **kwargs)
        arguments = dict(bound.arguments)
        for name, parameter in signature.parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # promote's **gate_options
                arguments.update(arguments.pop(name, {}))
        self.calls.append(arguments)
        return self.returns


def spy(monkeypatch: pytest.MonkeyPatch, module: str, name: str, returns: Any = None) -> Spy:
    """Replace ``module.name`` with a :class:`Spy` for the rest of the test."""
    import importlib

    target = importlib.import_module(module)
    stand_in = Spy(getattr(target, name), returns)
    monkeypatch.setattr(target, name, stand_in)
    return stand_in


def _results() -> dict[str, Any]:
    """What the spied functions return: the library's own result types, filled minimally."""
    from mlnb.export import ExportResult
    from mlnb.gates import GateReport, PromotionResult
    from mlnb.monitor import DriftReport
    from mlnb.pipeline import PipelineResult, Schedule
    from mlnb.versioning import GcResult, TransferResult, VersionRecord

    report = GateReport("models:/bc/2", None, "h.csv", "y", 10, "binary", "f1", "2026-01-01")
    return {
        "record": VersionRecord("data", "ab" * 32, "ab" * 32, "file", 3, 0.0, number=1),
        "export": ExportResult(Path("svc"), {"models": [], "endpoints": []}, {}),
        "gates": report,
        "promotion": PromotionResult("bc", "3", "2", "promote", changed=True),
        "drift": (DriftReport(profile="bc", features={}, n=0), None),
        "pipeline": PipelineResult("p", None, Path(".")),
        "schedule": Schedule("s1", "/abs/p.yaml", "*/5 * * * *", 0.0),
        "transfer": TransferResult("file:///r"),
        "gc": GcResult(),
        "none": [],
    }


@dataclass
class Case:
    """``mlnb ARGV`` calls ``module.function`` with exactly ``expected``."""

    argv: list[str]
    module: str
    function: str
    expected: dict[str, Any]
    returns: str | None = None  # a key of _results()

    @property
    def id(self) -> str:
        return " ".join(self.argv[:2])


_THRESHOLDS = [
    "--tolerance", "0.2", "--slice-tolerance", "0.3", "--max-slice-gap", "0.4",
    "--min-slice-rows", "5", "--noise", "0.5", "--max-flip-rate", "0.6",
    "--leakage-threshold", "0.7", "--seed", "3",
]  # fmt: skip
_HANDED_ON = {
    "slices": ["a", "b"], "metric": "f1", "tolerance": 0.2, "slice_tolerance": 0.3,
    "max_slice_gap": 0.4, "min_slice_rows": 5, "noise": 0.5, "max_flip_rate": 0.6,
    "leakage_threshold": 0.7, "seed": 3,
}  # fmt: skip
_HOLDOUT = ["--data", "h.csv", "--target", "y", "--slice", "a", "--slice", "b", "--metric", "f1"]

CASES = [
    Case(["show", "RUN", "-e", "exp"], "mlnb.tracking", "describe_run",
         {"run_id": "RUN", "experiment": "exp"}),
    Case(["version", "data.csv", "-n", "data", "--output"], "mlnb.tracking", "version",
         {"obj": "data.csv", "name": "data", "role": "output", "run": False}, "record"),
    Case(["versions", "data", "--json"], "mlnb.tracking", "versions", {"name": "data"},
         "none"),
    Case(["checkout", "data@2", "-o", "out.csv", "--force"], "mlnb.versioning", "checkout",
         {"ref": "data@2", "output": "out.csv", "force": True}),
    Case(["lineage", "data@2", "--json"], "mlnb.tracking", "lineage", {"ref": "data@2"}),
    Case(["push", "file:///r", "-n", "a", "--name", "b", "--verify"], "mlnb.versioning", "push",
         {"url": "file:///r", "names": ["a", "b"], "verify": True}, "transfer"),
    Case(["pull", "file:///r", "-n", "a"], "mlnb.versioning", "pull",
         {"url": "file:///r", "names": ["a"]}, "transfer"),
    Case(["gc", "--dry-run"], "mlnb.versioning", "gc", {"dry_run": True}, "gc"),
    Case(["export", "nb.ipynb", "-o", "svc", "--force", "--parity", "--no-verify",
          "--profile", "prof.json", "--challenger", "models:/bc/3", "--routing", "canary",
          "--canary-weight", "0.3", "--follow", "champion", "--allow-pickle"],
         "mlnb.export", "export_notebook",
         {"notebook": "nb.ipynb", "output": "svc", "force": True, "parity": True,
          "verify": False, "profile": "prof.json", "challenger": "models:/bc/3",
          "routing": "canary", "canary_weight": 0.3, "follow": "champion",
          "allow_pickle": True}, "export"),
    Case(["serve", "svc", "--host", "0.0.0.0", "--port", "9", "--workers", "3",
          "--timeout-header-read", "2.5", "--timeout-keep-alive", "1.5",
          "--limit-concurrency", "7", "--http", "h11"], "mlnb.serve", "serve",
         {"folder": "svc", "host": "0.0.0.0", "port": 9, "workers": 3,
          "timeout_header_read": 2.5, "timeout_keep_alive": 1.5, "limit_concurrency": 7,
          "http": "h11"}),
    Case(["pipeline", "run", "p.yaml", "-p", "train.alpha=0.5", "--workers", "2",
          "--executor", "dask://127.0.0.1:1", "--force", "--only", "train", "--from", "prep"],
         "mlnb.pipeline", "run_pipeline",
         {"path": "p.yaml", "overrides": {"train": {"alpha": 0.5}}, "force": True,
          "only": "train", "from_step": "prep", "workers": 2,
          "executor": "dask://127.0.0.1:1"}, "pipeline"),
    Case(["pipeline", "resume", "p.yaml", "--param", "train.alpha=1", "-w", "4",
          "--executor", "local"], "mlnb.pipeline", "run_pipeline",
         {"path": "p.yaml", "overrides": {"train": {"alpha": 1}}, "force": False,
          "only": None, "from_step": None, "workers": 4, "executor": "local"}, "pipeline"),
    Case(["pipeline", "status", "p.yaml", "-p", "train.alpha=2"], "mlnb.pipeline",
         "pipeline_status", {"path": "p.yaml", "overrides": {"train": {"alpha": 2}}}, "none"),
    Case(["monitor", "report", "svc", "-o", "report.html", "--last", "5", "--profile",
          "prof.json", "--fail-on-drift"], "mlnb.monitor", "report_from_source",
         {"source": "svc", "last": 5, "profile": "prof.json"}, "drift"),
    Case(["schedule", "add", "p.yaml", "--cron", "*/5 * * * *"], "mlnb.pipeline",
         "add_schedule", {"pipeline": Path("p.yaml"), "cron": "*/5 * * * *"}, "schedule"),
    Case(["schedule", "remove", "s1"], "mlnb.pipeline", "remove_schedule",
         {"schedule_id": "s1"}, "schedule"),
    Case(["gates", "models:/bc/2", "--against", "challenger", *_HOLDOUT, *_THRESHOLDS,
          "--json", "--no-record"], "mlnb.gates", "run_gates",
         {"candidate": "models:/bc/2", "against": "challenger", "data": "h.csv",
          "target": "y", "record": False, **_HANDED_ON}, "gates"),
    Case(["promote", "bc", "3", "--yes", "--skip-gates", *_HOLDOUT, *_THRESHOLDS],
         "mlnb.gates", "promote",
         {"name": "bc", "version": "3", "data": "h.csv", "target": "y", "skip_gates": True,
          **_HANDED_ON}, "promotion"),
    Case(["rollback", "bc"], "mlnb.gates", "rollback", {"name": "bc"}, "promotion"),
]  # fmt: skip


@pytest.fixture
def results() -> dict[str, Any]:
    return _results()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_option_is_handed_on(
    case: Case,
    results: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # monitor report writes its page here
    stand_in = spy(monkeypatch, case.module, case.function, results.get(case.returns or ""))
    code = mlnb.cli.main(case.argv)
    assert code == 0, capsys.readouterr().err
    assert len(stand_in.calls) == 1
    call = stand_in.calls[0]
    if case.function == "promote":  # the question the command asks: a function of its own
        assert callable(call.pop("confirm"))
    assert call == case.expected


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command's parser, by its words (``("pipeline", "run")``), options added."""
    parser.format_help()  # a command's options are added when it is used
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
            return
    yield path, parser


# commands whose options are not handed to a library function (or that have none)
_NOT_HANDED_ON = {("init",), ("sync",), ("status",), ("doctor",), ("ui",)}


def test_every_option_of_every_command_is_in_a_case() -> None:
    """An option added to a command without a case above fails here."""
    seen: dict[tuple[str, ...], list[str]] = {}
    for case in CASES:
        words = 2 if case.argv[0] in {"pipeline", "monitor"} else 1
        seen.setdefault(tuple(case.argv[:words]), []).extend(case.argv[words:])
    for path, parser in _commands(mlnb.cli.parser()):
        if path in _NOT_HANDED_ON:
            continue
        assert path in seen, f"mlnb {' '.join(path)} has no hand-off case"
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                used = set(action.option_strings) & set(seen[path])
                assert used, f"mlnb {' '.join(path)} {action.option_strings[0]} is in no case"


def test_doctor_repair_and_ui_hand_on_their_options(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The two commands that call the library with the project's own settings: ``doctor
    --repair`` repairs this project's store; ``ui`` starts ``mlflow ui`` (a spy here: a
    real UI is a server of its own) on the host and port given."""
    from mlnb.config import get_settings

    class Repaired:
        def lines(self) -> list[str]:
            return ["repaired"]

    repair = spy(monkeypatch, "mlnb.tracking", "repair_store", Repaired())
    assert mlnb.cli.main(["doctor", "--repair"]) == 0
    assert repair.calls == [{"uri": get_settings().tracking_uri}]
    assert capsys.readouterr().out == "repaired\n"

    call = spy(monkeypatch, "subprocess", "call", 0)
    assert mlnb.cli.main(["ui", "--host", "0.0.0.0", "--port", "5123"]) == 0
    command = call.calls[0]["popenargs"][0]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "5123"
    assert command[command.index("--backend-store-uri") + 1] == get_settings().tracking_uri
    assert "--workers" not in command  # MLflow's own default
    assert mlnb.cli.main(["ui", "--workers", "1"]) == 0
    command = call.calls[1]["popenargs"][0]
    assert command[command.index("--workers") + 1] == "1"


def test_defaults_are_the_librarys(
    results: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without options a command hands on the library function's own defaults (typed once,
    in the library), and serve's help shows the service's own timeouts."""
    from mlnb.gates import run_gates
    from mlnb.pipeline import run_pipeline
    from mlnb.serve import DEFAULT_TIMEOUT_HEADER_READ, DEFAULT_TIMEOUT_KEEP_ALIVE, serve

    def defaults(function: Callable[..., Any]) -> dict[str, Any]:
        parameters = inspect.signature(function).parameters.values()
        return {p.name: p.default for p in parameters if p.default is not p.empty}

    gates = spy(monkeypatch, "mlnb.gates", "run_gates", results["gates"])
    assert mlnb.cli.main(["gates", "models:/bc/2"]) == 0
    handed = gates.calls[0]
    assert handed.pop("slices") == [] and handed.pop("data") is None
    assert handed.pop("candidate") == "models:/bc/2" and handed.pop("target") is None
    assert handed == {k: v for k, v in defaults(run_gates).items() if k in handed}
    assert set(handed) == set(defaults(run_gates)) - {"slices"}

    service = spy(monkeypatch, "mlnb.serve", "serve")
    assert mlnb.cli.main(["serve", "svc"]) == 0
    assert service.calls[0] == {"folder": "svc", **defaults(serve)}

    pipeline = spy(monkeypatch, "mlnb.pipeline", "run_pipeline", results["pipeline"])
    assert mlnb.cli.main(["pipeline", "resume"]) == 0
    chosen = {"force", "only", "from_step", "workers", "executor"}
    expected = {k: v for k, v in defaults(run_pipeline).items() if k in chosen}
    assert pipeline.calls[0] == {"path": "pipeline.yaml", "overrides": {}, **expected}

    capsys.readouterr()
    with pytest.raises(SystemExit):
        mlnb.cli.main(["serve", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(MLNB_TIMEOUT_HEADER_READ; {DEFAULT_TIMEOUT_HEADER_READ:g})" in shown
    assert f"(MLNB_TIMEOUT_KEEP_ALIVE; {DEFAULT_TIMEOUT_KEEP_ALIVE:g})" in shown


def test_errors_become_one_line_and_their_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one place errors become exit codes: the command's, and the scheduler's runs."""
    from mlnb.cli._schedule import run_due

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise VersionNotFoundError("no version data@9; see `mlnb versions data`.")

    monkeypatch.setattr("mlnb.versioning.checkout", missing)
    assert mlnb.cli.main(["checkout", "data@9"]) == VersionNotFoundError.exit_code
    assert capsys.readouterr().err == (
        "mlnb: error: no version data@9; see `mlnb versions data`.\n"
    )

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("mlnb.versioning.checkout", interrupted)
    assert mlnb.cli.main(["checkout", "data@9"]) == 130

    def bad(*args: Any, **kwargs: Any) -> Any:
        raise ConfigError("flush_interval = 'soon' is not a valid float")

    monkeypatch.setattr("mlnb.pipeline.run_pipeline", bad)
    assert run_due(Path("p.yaml")) == ConfigError.exit_code  # the scheduler goes on
    assert capsys.readouterr().err == (
        "mlnb: error: flush_interval = 'soon' is not a valid float\n"
    )


def test_a_command_loads_only_its_own_part_of_the_library() -> None:
    """Options are added when their command is used: ``mlnb status`` does not import the
    service (FastAPI), the pipeline runner or the gates to show their defaults."""
    code = (
        "import sys; from mlnb.cli import parser; parser().parse_args(['status']); "
        "print(sorted(m for m in ('fastapi', 'mlnb.serve', 'mlnb.pipeline', 'mlnb.gates') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_export_lists_what_it_pinned(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mlnb export``'s listing of an export with everything in it (the spy returns the
    metadata a real export writes), line for line as before the listing became one loop."""
    from mlnb.export import ExportResult

    meta = {
        "signature": {"key_id": "k1"},
        "models": [{"resolved": "models:/bc/2", "path": "models/bc", "hash": "a" * 40}],
        "files": [{"source": "data/x.csv", "path": "files/x.csv", "hash": "b" * 40}],
        "versions": [{"resolved": "train@3", "path": "versions/train", "hash": "c" * 40}],
        "endpoints": [{"path": "/predict", "kind": "predict", "function": "predict"}],
        "challenger": {"resolved": "models:/bc/3", "path": "models/challenger"},
        "routing": "canary",
        "follow": "champion",
        "profile": "profile.json",
    }
    answers = {"/predict": {"predictions": [1, 0]}}
    spy(monkeypatch, "mlnb.export", "export_notebook", ExportResult(Path("svc"), meta, answers, []))
    assert mlnb.cli.main(["export", "nb.ipynb", "-o", "svc"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "exported nb.ipynb to svc",
        "  signed    with MLNB_SIGNING_KEY (key id k1)",
        "  model     models:/bc/2  pinned as models/bc (aaaaaaaaaaaa)",
        "  file      data/x.csv  pinned as files/x.csv (bbbbbbbbbbbb)",
        "  version   train@3  pinned as versions/train (cccccccccccc)",
        "  endpoint  POST /predict  (predict, from predict)",
        "  challenger models:/bc/3  pinned as models/challenger (canary)",
        "  follows   @champion (reloads when the alias moves)",
        "  profile   profile.json (defaults, range checks and drift)",
        "  verified  POST /predict with the example -> 200 [1, 0]",
        "  parity    the service answers as the notebook's own predict(example)",
        "serve it:  mlnb serve svc",
    ]
