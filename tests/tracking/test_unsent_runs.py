"""mlnb.tracking.unsent_runs: the runs a journal holds that the store does not have yet, read
from segments as a kernel leaves them on disk (``<name>.jsonl`` entries, ``<name>.sent`` ids
sent, with the real run id of a created run). The sidebar calls it on each poll."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlnb.tracking import unsent_runs

URI = "sqlite:///store.db"


def _segment(folder: Path, name: str, entries: list[dict[str, Any]], sent: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e, separators=(",", ":")) for e in entries]
    (folder / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines))
    (folder / f"{name}.sent").write_text("".join(f"{i}\n" for i in sent))


def _create(entry_id: str, run: str, notebook: str, uri: str = URI) -> dict[str, Any]:
    return {
        "id": entry_id,
        "ts": int(time.time() * 1000),
        "op": "create_run",
        "uri": uri,
        "run": run,
        "experiment_id": "0",
        "run_name": None,
        "tags": {"mlnb.notebook": notebook},
        "start_time": 1_000 + len(run),
    }


def _batch(entry_id: str, run: str, step: int, uri: str = URI) -> dict[str, Any]:
    return {
        "id": entry_id,
        "op": "log_batch",
        "uri": uri,
        "run": run,
        "metrics": [["loss", 1.0 / (step + 1), 0, step]],
        "params": [["lr", "0.1"]] if step == 0 else [],
        "tags": [],
    }


def test_only_runs_not_created_yet_are_listed_with_what_was_logged_for_them(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal"
    sent_run = [_create("c1", "local-a", "a.ipynb")]
    sent_run += [_batch(f"a{i}", "local-a", i) for i in range(2000)]  # a long, sent run
    later = [_create("c2", "local-b", "b.ipynb"), _batch("b0", "local-b", 0)]
    other_store = [_create("c3", "local-c", "c.ipynb", uri="http://elsewhere:5000")]
    _segment(journal, "host-1-x", sent_run + later + other_store, ["c1 real-a", "a0"])
    # the same run goes on in the next segment (a restart of the writer); it ends there
    ended = {"id": "e1", "op": "set_terminated", "uri": URI, "run": "local-b", "status": "FAILED"}
    _segment(journal, "host-1-y", [_batch("b1", "local-b", 1), ended], [])

    found = unsent_runs(journal, URI)
    assert [r["run"] for r in found] == ["local-b"]
    (run,) = found
    assert run["params"] == {"lr": "0.1"}
    assert run["metrics"] == {"loss": 0.5}  # the last value logged, from the second segment
    assert run["status"] == "FAILED" and run["tags"]["mlnb.notebook"] == "b.ipynb"


def test_a_cut_line_and_an_empty_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    assert unsent_runs(journal, URI) == []  # no folder yet
    _segment(journal, "host-2-x", [_create("c1", "local-a", "a.ipynb")], [])
    with (journal / "host-2-x.jsonl").open("a") as fh:
        fh.write('{"id":"b0","op":"log_batch","uri":"sqlite:///st')  # a crash mid-write
    assert [r["run"] for r in unsent_runs(journal, URI)] == ["local-a"]
