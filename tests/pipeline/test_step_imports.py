"""papermill in mlnb's own process: imported without jsonschema's IRI format checks (whose
grammar is most of its import), and left as it is in any other process."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from mlnb.pipeline import own_process
from mlnb.pipeline._step import ENGINE, load_papermill
if sys.argv[1] == "own":
    own_process()
load_papermill()
import jsonschema
from papermill.engines import papermill_engines
checks = sorted(jsonschema.FormatChecker.checkers)
had_grammar = "rfc3987_syntax" in sys.modules
import rfc3987_syntax  # still importable afterwards
print(json.dumps({
    "engine": ENGINE in papermill_engines._engines,
    "had_grammar": had_grammar,
    "iri": "iri" in checks,
    "later": rfc3987_syntax.is_valid_syntax("iri", "https://example.org/a"),
}))
"""


def _probe(mode: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, bool] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_own_process_imports_papermill_without_the_iri_grammar() -> None:
    assert _probe("own") == {"engine": True, "had_grammar": False, "iri": False, "later": True}


def test_other_processes_import_papermill_as_usual() -> None:
    assert _probe("other") == {"engine": True, "had_grammar": True, "iri": True, "later": True}
