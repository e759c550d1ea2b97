"""What ``import mlnb`` offers, and what it costs."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import mlnb
import mlnb.exceptions


def test_all_names_resolve() -> None:
    for name in mlnb.__all__:
        assert getattr(mlnb, name) is not None, name
    assert sorted(mlnb.__all__) == mlnb.__all__


def test_mlflow_names_keep_mlflows_signatures() -> None:
    import mlflow

    for name in ("start_run", "end_run", "log_params", "log_metrics", "log_artifact", "set_tags"):
        ours = list(inspect.signature(getattr(mlnb, name)).parameters)
        theirs = list(inspect.signature(getattr(mlflow, name)).parameters)
        # Same parameters in the same order; either side may add trailing options
        # (mlnb: experiment_name=; MLflow: synchronous=, run_id=).
        common = min(len(ours), len(theirs))
        assert ours[:common] == theirs[:common], (name, ours, theirs)
        assert common >= 1


def test_import_is_light() -> None:
    code = (
        "import sys, mlnb; heavy = {'mlflow', 'IPython', 'pandas', 'sklearn', 'nbformat'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_error_derives_from_mlnb_error() -> None:
    for name in mlnb.exceptions.__all__:
        error = getattr(mlnb.exceptions, name)
        if issubclass(error, Warning):
            assert issubclass(error, mlnb.exceptions.MlnbWarning), name
            continue
        assert issubclass(error, mlnb.MlnbError), name
        assert isinstance(error.exit_code, int)


def _exception_classes() -> dict[str, tuple[str, list[str], bool]]:
    """Every exception and warning class defined in mlnb's sources, read with ``ast`` (no
    import of mlnb's modules): name -> (module, names of its direct bases, is a warning)."""
    import ast
    import builtins
    import importlib
    import re

    # another library's class is taken for an exception when its name says so (and it is one)
    exception_name = re.compile(r"(Error|Exception|Warning|Exit|Interrupt|Failed)$")
    package = Path(mlnb.__file__).parent
    classes: dict[tuple[str, str], list[str]] = {}  # (module, name) -> bases
    imported: dict[tuple[str, str], str] = {}  # (module, name) -> module it comes from
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    imported[(module, alias.asname or alias.name)] = node.module
            elif isinstance(node, ast.ClassDef):
                classes[(module, node.name)] = [ast.unparse(b).split(".")[-1] for b in node.bases]

    def root(module: str, name: str) -> type | None:
        """The class outside mlnb that ``name``, as ``module`` sees it, derives from."""
        while (module, name) not in classes and (module, name) in imported:
            module = imported[(module, name)]  # follow re-exports to the definition
            if not module.startswith("mlnb"):
                if not exception_name.search(name):  # (importing every base costs a minute)
                    return None
                found = getattr(importlib.import_module(module), name, None)
                return found if isinstance(found, type) else None
        if (module, name) in classes:
            found_bases = [root(module, base) for base in classes[(module, name)]]
            return next((b for b in found_bases if b is not None), None)
        found = getattr(builtins, name, None)
        return found if isinstance(found, type) else None

    out: dict[str, tuple[str, list[str], bool]] = {}
    for (module, name), bases in classes.items():
        base = root(module, name)
        if base is not None and issubclass(base, BaseException):
            assert name not in out, f"two exception classes named {name}: {module}, {out[name][0]}"
            out[name] = (module, bases, issubclass(base, Warning))
    return out


def _drawn_tree() -> tuple[dict[str, str | None], dict[str, str], dict[str, str]]:
    """The drawing in mlnb.exceptions' docstring: class -> parent (None for the root),
    class -> its line, and the private signals: class -> the module named for it."""
    import re

    doc = mlnb.exceptions.__doc__ or ""
    lines = doc.splitlines()
    start = lines.index("    MlnbError")
    parents: dict[str, str | None] = {"MlnbError": None}
    text: dict[str, str] = {"MlnbError": lines[start]}
    stack = ["MlnbError"]
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        drawn = re.match(r"^    ((?:[│ ]   )*)[├└]── (\w+)", line)
        if drawn is None:
            continue  # a description carried on to the next line
        depth = len(drawn.group(1)) // 4 + 1
        del stack[depth:]
        parents[drawn.group(2)] = stack[-1]
        text[drawn.group(2)] = line
        stack.append(drawn.group(2))
    private = dict(re.findall(r"^    (_\w+) +(mlnb[\w.]*):", doc, flags=re.MULTILINE))
    return parents, text, private


def test_exception_tree_draws_every_exception_class() -> None:
    # In a fresh interpreter: CPython 3.11's ast.parse is not safe while another thread
    # parses (a SystemError "AST constructor recursion depth mismatch"), as threads left by
    # earlier tests may.
    code = "import json, tests.test_public_api as t; print(json.dumps(t._exception_classes()))"
    root = Path(__file__).parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    classes = json.loads(done.stdout)
    parents, text, private = _drawn_tree()
    assert len(parents) > 20, "the tree in mlnb.exceptions' docstring could not be read"
    errors = {name: c for name, c in classes.items() if not c[2]}
    for name, (module, bases, _) in errors.items():
        if name in private:
            assert name.startswith("_"), f"{name} is public: draw it under MlnbError"
            assert module == private[name], f"{name} is in {module}, drawn in {private[name]}"
            continue
        assert name in parents, f"{name} ({module}) is not drawn in mlnb.exceptions' tree"
        parent = parents[name]
        if parent is not None:
            assert parent in bases, f"{name} is drawn under {parent} but derives from {bases}"
        if module == "mlnb.exceptions":
            assert name in mlnb.exceptions.__all__, name
        else:
            assert module in text[name], f"{name} lives in {module}: say so in its line"
    for name in [*parents, *private]:
        assert name in errors, f"{name} is drawn but mlnb defines no such exception class"
    warnings_ = sorted(name for name, c in classes.items() if c[2])
    assert warnings_ == ["MlnbWarning", "ObjectHealedWarning"], warnings_
    for name in warnings_:
        assert f":class:`{name}`" in (mlnb.exceptions.__doc__ or ""), name
