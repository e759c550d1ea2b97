"""What mlnb.widgets offers, what importing it costs, and which way the imports point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlnb.widgets

PACKAGE = Path(mlnb.__file__).parent
FACES = {"mlnb.widgets", "mlnb.magics", "mlnb.cli", "mlnb.labserver"}


def test_all_names_resolve_and_are_sorted() -> None:
    for name in mlnb.widgets.__all__:
        assert getattr(mlnb.widgets, name) is not None, name
    assert sorted(mlnb.widgets.__all__) == mlnb.widgets.__all__


def test_import_loads_neither_mlflow_nor_pandas() -> None:
    code = (
        "import sys, mlnb.widgets; heavy = {'mlflow', 'pandas', 'numpy', 'sklearn'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


_SCAN = """
import ast, json, sys
from pathlib import Path
package, faces = Path(sys.argv[1]), set(sys.argv[2:])
offenders = []
for path in sorted(package.rglob("*.py")):
    module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
    if any(module == f or module.startswith(f + ".") for f in faces):
        continue
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        offenders += [f"{module}: {n}" for n in names if n.startswith("mlnb.widgets")]
print(json.dumps(offenders))
"""


def test_the_core_never_imports_the_widgets() -> None:
    # In a fresh interpreter: CPython 3.11's AST constructor keeps a recursion counter that an
    # earlier failed parse in a long test process can leave off (gh-106905), which makes any
    # later ast.parse raise SystemError.
    done = subprocess.run(
        [sys.executable, "-c", _SCAN, str(PACKAGE), *sorted(FACES)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == []
