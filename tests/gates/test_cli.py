"""``mlnb gates``, ``mlnb promote`` and ``mlnb rollback`` as a user runs them: processes of
their own on the project's store (and a real pseudo-terminal for the confirmation)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlnb.cli import main
from mlnb.exceptions import GateError, GatesFailed
from tests.conftest import run_mlnb
from tests.gates.conftest import NAME, Split, bad_model, champion, good_model, register
from tests.gates.conftest import write_holdout as _write


def _piped(cwd: Path, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    """`mlnb` with stdin a pipe (as from a script or CI), not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "mlnb", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _on_a_terminal(cwd: Path, *args: str, answer: str) -> tuple[int, str]:
    """`mlnb` with stdin a pseudo-terminal; ``answer`` is typed once the question shows."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlnb", *args],
        cwd=cwd,
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    os.close(secondary)
    try:
        output = b""
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        deadline = time.monotonic() + 120
        while b"[y/N]" not in output and process.poll() is None:
            assert time.monotonic() < deadline, output.decode()
            output += process.stdout.read() or b""
            time.sleep(0.05)
        os.write(primary, answer.encode() + b"\n")
        os.set_blocking(process.stdout.fileno(), True)
        output += process.stdout.read()
        return process.wait(timeout=60), output.decode()
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
            process.wait()


def test_gates_command_passes_fails_and_prints_json(project: Path, split: Split) -> None:
    register(good_model(split))
    v2 = register(good_model(split, C=0.5))
    v3 = register(bad_model(split))
    holdout = _write(split, project)
    from mlnb import gates

    gates.promote(NAME, 1)
    common = ["--data", str(holdout), "--target", "target", "--slice", "site"]

    ok = run_mlnb(project, "gates", f"models:/{NAME}/{v2}", "--against", "champion", *common)
    assert ok.returncode == 0, ok.stderr
    assert "PASS  regression" in ok.stdout and "vs champion" in ok.stdout
    assert "site=north" in ok.stdout and "result: PASSED" in ok.stdout
    assert "report: runs:/" in ok.stdout

    bad = run_mlnb(project, "gates", f"models:/{NAME}/{v3}", *common, "--json")
    assert bad.returncode == GatesFailed.exit_code, bad.stderr
    doc = json.loads(bad.stdout)
    assert doc["passed"] is False
    failed = {c["name"] for c in doc["checks"] if c["status"] == "failed"}
    assert "regression" in failed
    assert bad.stderr.startswith("mlnb: error: gates failed for models:/bc/3")
    assert "Traceback" not in bad.stderr


def test_gates_command_without_data_names_the_option(
    project: Path, split: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register(good_model(split))
    capsys.readouterr()  # MLflow's own messages about the registration
    code = main(["gates", f"models:/{NAME}/{version}", "--target", "target"])
    assert code == GateError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("mlnb: error: the gates need holdout data: pass --data HOLDOUT")


def test_promote_asks_on_a_terminal_and_refuses_a_pipe(project: Path, split: Split) -> None:
    register(good_model(split))
    v2 = register(good_model(split, C=0.5))
    holdout = str(_write(split, project))
    assert main(["promote", NAME, "1", "--yes"]) == 0  # in this process: no question asked
    assert champion() == "1"

    piped = _piped(project, "promote", NAME, v2, "--data", holdout, "--target", "target",
                   stdin="y\n")  # fmt: skip
    assert piped.returncode == GateError.exit_code
    assert "stdin is not a terminal" in piped.stderr and "--yes" in piped.stderr
    assert champion() == "1"

    args = ("promote", NAME, v2, "--data", holdout, "--target", "target")
    code, output = _on_a_terminal(project, *args, answer="n")
    assert code == 1, output
    assert "PASS  regression" in output
    assert f"Promote bc version {v2} to champion (replacing version 1)? [y/N]" in output
    assert "not promoted" in output and champion() == "1"

    code, output = _on_a_terminal(project, *args, answer="y")
    assert code == 0, output
    assert f"champion of bc: version 1 -> version {v2}" in output and champion() == v2


def test_promote_yes_then_rollback_and_rollback_without_history(
    project: Path, split: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (``mlnb.cli.main``): the same parser and exit codes, without paying
    for a new interpreter (importing MLflow) for each of the five commands."""
    register(good_model(split))
    v2 = register(bad_model(split))
    holdout = str(_write(split, project))

    def mlnb_(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = mlnb_("promote", NAME, "1", "--yes")
    assert code == 0, err
    assert "PASS  loads" in out and "champion of bc: (none) -> version 1" in out
    assert "undo with: mlnb rollback bc" in out
    code, out, err = mlnb_("promote", NAME, v2, "--yes")
    assert code == GateError.exit_code
    assert "--data HOLDOUT" in err and "--skip-gates" in err and champion() == "1"

    code, out, err = mlnb_("promote", NAME, v2, "--yes", "--data", holdout, "--target", "target")
    assert code == GatesFailed.exit_code
    assert "FAIL  regression" in out and "gates failed" in err and champion() == "1"

    code, out, err = mlnb_("promote", NAME, v2, "--yes", "--skip-gates")
    assert code == 0, err
    assert champion() == v2

    code, out, err = mlnb_("rollback", NAME)
    assert code == 0, err
    assert f"rolled back champion of bc: version {v2} -> version 1" in out
    assert champion() == "1"

    code, out, err = mlnb_("rollback", NAME)
    assert code == GateError.exit_code
    assert "no previous champion" in err and champion() == "1"
