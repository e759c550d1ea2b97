"""The layers of mlnb, read from the source (``ast``; nothing is imported or run).

1. A package speaks through its face: outside ``mlnb.<pkg>`` nothing imports
   ``mlnb.<pkg>._<module>`` or a private name (``_x``) of it; what other packages use is in
   ``mlnb/<pkg>/__init__.py``'s ``__all__``. The root's own ``mlnb._<module>`` helpers
   (``_text``, ``_disk``, ``_net``...) are shared by every package.
2. The core never imports a face. The faces are ``magics``, ``widgets``, ``cli`` and
   ``labserver``; Python and IPython enter the package through ``mlnb/__main__.py``
   (``python -m mlnb``) and the extension hooks in ``mlnb/__init__.py`` (``%load_ext mlnb``),
   which hand on to a face and so may import one.
3. Versioning is a store: ``mlnb.versioning`` imports neither ``mlnb.tracking`` nor MLflow
   (tracking calls versioning, never the other way).

There is no list of exceptions: a failure names the file, the line and what to import instead.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import mlnb

PACKAGE = Path(mlnb.__file__).resolve().parent
TREE = PACKAGE.parent
FACES = frozenset({"magics", "widgets", "cli", "labserver"})
#: where Python and IPython enter the package: file -> the functions that may import a face
#: (None: the whole module is an entry point)
ENTRY_POINTS: dict[str, frozenset[str] | None] = {
    "mlnb/__main__.py": None,
    "mlnb/__init__.py": frozenset({"load_ipython_extension", "unload_ipython_extension"}),
}
PACKAGES = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


@dataclass(frozen=True)
class Import:
    file: str  # relative to the tree: mlnb/serve/_files.py
    line: int
    module: str  # absolute: mlnb.tracking._client
    names: tuple[str, ...]  # imported from it (empty for ``import module``)
    function: str | None  # the enclosing function, None at module level

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def unit_of(file: str) -> str:
    """The package or top-level module under mlnb a file belongs to ("" for the root)."""
    parts = Path(file).with_suffix("").parts  # ("mlnb", "tracking", "_client")
    return "" if parts[1:] in ((), ("__init__",)) else parts[1]


def unit_of_module(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@cache
def _is_module(module: str) -> bool:
    path = TREE.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@cache
def imports(file: str, source: str) -> list[Import]:
    """Every import of an mlnb module in ``source`` (the file ``file``), resolved to
    absolute names; ``from mlnb.pkg import sub`` counts as importing ``mlnb.pkg.sub`` when
    ``sub`` is a module."""
    package = list(Path(file).parts[:-1])  # what a relative import starts from
    found: list[Import] = []
    for node, function in _import_nodes(_tree(source), None):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mlnb" or alias.name.split(".")[0] == "mlflow":
                    found.append(Import(file, node.lineno, alias.name, (), function))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in ("mlnb", "mlflow"):
                continue
            names = tuple(a.name for a in node.names)
            submodules = [n for n in names if _is_module(f"{module}.{n}")]
            others = tuple(n for n in names if n not in submodules)
            for name in submodules:
                found.append(Import(file, node.lineno, f"{module}.{name}", (), function))
            if others or not submodules:
                found.append(Import(file, node.lineno, module, others, function))
    return sorted(found, key=lambda i: (i.line, i.module))


@cache
def _tree(source: str) -> ast.Module:
    return ast.parse(source)


def _import_nodes(
    node: ast.AST, function: str | None
) -> Iterator[tuple[ast.Import | ast.ImportFrom, str | None]]:
    """The import statements under ``node``, each with its (outermost) enclosing function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, function
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _import_nodes(child, function or child.name)
        elif not isinstance(child, ast.expr):
            yield from _import_nodes(child, function)


@cache
def public_names(unit: str) -> frozenset[str]:
    """``__all__`` of ``mlnb.<unit>``, read from its source."""
    path = PACKAGE / unit / "__init__.py"
    if not path.is_file():
        path = PACKAGE / f"{unit}.py"
    if not path.is_file():
        return frozenset()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            assert isinstance(node, ast.Assign)
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _use(unit: str, name: str) -> str:
    face = f"mlnb/{unit}/__init__.py"
    if name in public_names(unit):
        return f"`from mlnb.{unit} import {name}`"
    public = name.lstrip("_")
    return (
        f"a public name from mlnb.{unit}: add {public!r} to {face}'s __all__ (a lazy name "
        f"when its module is heavy) and use `from mlnb.{unit} import {public}`"
    )


def _attributes_used(source: str, alias: str) -> list[str]:
    """What ``source`` reads from the module it imported as ``alias`` (``alias.X``)."""
    return sorted(
        {
            node.attr
            for node in ast.walk(_tree(source))
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == alias
        }
    )


def private_imports(file: str, source: str) -> list[str]:
    """Rule 1: the imports of another package's private modules or names in ``file``."""
    own = unit_of(file)
    problems = []
    for imp in imports(file, source):
        parts = imp.module.split(".")
        unit = unit_of_module(imp.module)
        if parts[0] != "mlnb" or unit in ("", own) or _private(unit):
            continue  # the root's own helpers (mlnb._text...) are shared by every package
        private_parts = [p for p in parts[2:] if _private(p)]
        private_names = [n for n in imp.names if _private(n)]
        if private_parts:
            names = list(imp.names) or _attributes_used(source, parts[-1])
            uses = "; ".join(f"{n}: {_use(unit, n)}" for n in names) or (
                f"the names it needs from mlnb.{unit} (its __all__)"
            )
            problems.append(f"{imp.where}: imports the private module {imp.module}; use {uses}")
            continue
        for name in private_names:
            problems.append(
                f"{imp.where}: imports the private name {name} of {imp.module}; use "
                f"{_use(unit, name)}"
            )
    return problems


def face_imports(file: str, source: str) -> list[str]:
    """Rule 2: imports of a face from the core in ``file``."""
    if unit_of(file) in FACES:
        return []
    allowed_in = ENTRY_POINTS.get(file, frozenset())
    problems = []
    for imp in imports(file, source):
        target = unit_of_module(imp.module)
        if imp.module.split(".")[0] != "mlnb" or target not in FACES:
            continue
        if allowed_in is None or imp.function in allowed_in:
            continue
        problems.append(
            f"{imp.where}: the core module {file} imports the face mlnb.{target} "
            f"({imp.module}); faces call the core, never the other way: move what both "
            f"need into the core (a face only parses input and calls the library)"
        )
    return problems


def versioning_imports(file: str, source: str) -> list[str]:
    """Rule 3: imports of tracking or MLflow from versioning in ``file``."""
    if unit_of(file) != "versioning":
        return []
    problems = []
    for imp in imports(file, source):
        parts = imp.module.split(".")
        if parts[0] == "mlflow" or (
            parts[0] == "mlnb" and unit_of_module(imp.module) == "tracking"
        ):
            problems.append(
                f"{imp.where}: mlnb.versioning imports {imp.module}; versioning is a store that "
                "knows nothing of runs or MLflow: do this in mlnb.tracking (which calls "
                "mlnb.versioning's public names), or take what it needs as an argument"
            )
    return problems


@cache
def _sources() -> list[tuple[str, str]]:
    return [
        (path.relative_to(TREE).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def _check_here(rule: object) -> list[str]:
    assert callable(rule)
    return [problem for file, source in _sources() for problem in rule(file, source)]


_RULES = ("private_imports", "face_imports", "versioning_imports")


@cache
def _checked() -> dict[str, list[str]]:
    """Each rule's problems over the whole tree, read in a fresh interpreter: on CPython
    3.11 before 3.11.8, ``ast.parse`` fails with "AST constructor recursion depth mismatch"
    when another thread parses at the same moment (gh-106905), and the threads earlier tests
    leave in a pytest worker may (the standard library parses in ``inspect.signature`` and
    in traceback formatting)."""
    code = (
        "import json, tests.test_layering as t; "
        f"found = {{r: t._check_here(getattr(t, r)) for r in {_RULES!r}}}; "
        "found['imports'] = [str(sum(len(t.imports(f, s)) for f, s in t._sources()))]; "
        "print(json.dumps(found))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=TREE, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def _check(rule: object) -> list[str]:
    name = getattr(rule, "__name__", "")
    assert name in _RULES
    return _checked()[name]


# -- the tree -----------------------------------------------------------------------------
def test_packages_use_each_other_through_their_faces() -> None:
    problems = _check(private_imports)
    assert not problems, "\n".join(problems)


def test_the_core_never_imports_a_face() -> None:
    problems = _check(face_imports)
    assert not problems, "\n".join(problems)


def test_versioning_imports_neither_tracking_nor_mlflow() -> None:
    problems = _check(versioning_imports)
    assert not problems, "\n".join(problems)


def test_the_checks_read_every_module() -> None:
    files = [file for file, _ in _sources()]
    assert "mlnb/__init__.py" in files and "mlnb/serve/_service.py" in files
    assert {unit_of(f) for f in files} >= {"tracking", "versioning", "serve", "magics", ""}
    (count,) = _checked()["imports"]  # the tree's mlnb imports, read in a fresh interpreter
    assert int(count) > 200


@pytest.mark.parametrize("package", sorted(set(PACKAGES) - FACES))
def test_every_public_name_resolves(package: str) -> None:
    """Each core package's ``__all__`` is its map: sorted as ruff sorts it, no name twice,
    every name there (lazy names load on access). (The faces' names are their own tests'.)"""
    module = importlib.import_module(f"mlnb.{package}")
    names = list(module.__all__)
    assert len(set(names)) == len(names), package
    assert names == sorted(set(names)) or names == _ruff_sorted(names), package
    for name in names:
        assert getattr(module, name) is not None, f"mlnb.{package}.{name}"
        assert name in dir(module), f"mlnb.{package}.{name}"


def _ruff_sorted(names: list[str]) -> list[str]:
    """RUF022's order: SCREAMING_CASE, then CamelCase, then the rest, each alphabetically."""

    def kind(name: str) -> int:
        if name.isupper() or (name.upper() == name and "_" in name):
            return 0
        return 1 if name[:1].isupper() else 2

    return sorted(names, key=lambda n: (kind(n), n))


# -- the checks themselves ----------------------------------------------------------------
def test_a_private_module_of_another_package_is_named_with_its_public_name() -> None:
    problems = private_imports(
        "mlnb/serve/_x.py",
        "from mlnb.tracking._client import get_client\n"
        "def f():\n"
        "    from mlnb.tracking import _models\n"
        "    return _models.pinned_models\n"
        "import mlnb.versioning._hashing\n",
    )
    assert problems[0].startswith("mlnb/serve/_x.py:1: imports the private module")
    assert "`from mlnb.tracking import get_client`" in problems[0]
    assert "mlnb/serve/_x.py:3" in problems[1]
    assert "`from mlnb.tracking import pinned_models`" in problems[1]
    assert "mlnb/serve/_x.py:5" in problems[2] and "mlnb.versioning._hashing" in problems[2]
    assert len(problems) == 3


def test_a_private_name_without_a_public_one_says_where_to_add_it() -> None:
    (problem,) = private_imports("mlnb/gates/_x.py", "from ..tracking._models import _secret\n")
    assert "mlnb/gates/_x.py:1" in problem and "mlnb.tracking._models" in problem
    assert "add 'secret' to mlnb/tracking/__init__.py's __all__" in problem
    (problem,) = private_imports("mlnb/gates/_x.py", "from mlnb.tracking import _original\n")
    assert "private name _original of mlnb.tracking" in problem


def test_a_package_may_use_its_own_private_modules_and_the_roots_helpers() -> None:
    source = (
        "from mlnb.serve._app import create_app\n"
        "from ._routing import fetch_model\n"
        "from mlnb._text import first_line\n"
        "from mlnb import _disk\n"
        "from mlnb.tracking import get_client\n"
    )
    assert private_imports("mlnb/serve/_service.py", source) == []
    assert private_imports("mlnb/serve/__init__.py", "from ._app import create_app\n") == []
    assert private_imports("mlnb/cli.py", "from mlnb.cli import _x\n") == []


def test_a_face_imported_from_the_core_fails_but_not_from_a_face_or_an_entry_point() -> None:
    core = "def f():\n    from mlnb.widgets import runs_panel\nfrom mlnb import magics\n"
    problems = face_imports("mlnb/monitor/_x.py", core)
    assert [p.split(":")[1] for p in problems] == ["2", "3"]
    assert "imports the face mlnb.widgets" in problems[0]
    assert face_imports("mlnb/magics.py", core) == []
    assert face_imports("mlnb/labserver/_x.py", "from mlnb.cli import run\n") == []
    assert face_imports("mlnb/__main__.py", "from mlnb.cli import run\n") == []
    hooks = "def load_ipython_extension(ip):\n    from mlnb.magics import load\n"
    assert face_imports("mlnb/__init__.py", hooks) == []
    (problem,) = face_imports("mlnb/__init__.py", "from mlnb.magics import load\n")
    assert "mlnb/__init__.py:1" in problem


def test_versioning_importing_tracking_or_mlflow_fails() -> None:
    source = (
        "import mlflow\n"
        "def f():\n"
        "    from mlflow.entities import ViewType\n"
        "    from ..tracking import session\n"
        "from mlnb.config import get_settings\n"
    )
    problems = versioning_imports("mlnb/versioning/_x.py", source)
    assert [p.split(":")[1] for p in problems] == ["1", "3", "4"]
    assert "mlnb.versioning imports mlnb.tracking" in problems[2]
    assert versioning_imports("mlnb/tracking/_x.py", source) == []
