"""Reading a notebook for export: its tagged cells, the static check, the model URIs."""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb._text import first_code_line
from mlnb.exceptions import NotebookError

__all__ = ["ExportCell", "ExportPlan", "cell_label", "read_plan"]

EXPORT_TAG = "mlnb:export"
EXAMPLE_TAG = "mlnb:example"
SKIP_TAG = "mlnb:skip"
KNOWN_TAGS = {EXPORT_TAG, EXAMPLE_TAG, SKIP_TAG, "parameters", "injected-parameters"}


def cell_label(index: int, cell: dict[str, Any]) -> str:
    """A cell as a notebook user finds it in JupyterLab: its position counted from 1, its
    execution count as the prompt shows it (``[5]``) when it ran, and its first line, e.g.
    ``cell 7 [5] "model = mlnb.load_model(...)"`` (never its id, which JupyterLab hides)."""
    count = cell.get("execution_count") if cell.get("cell_type") == "code" else None
    prompt = f" [{count}]" if isinstance(count, int) else ""
    first = first_code_line(_source(cell), limit=48)
    return f"cell {index + 1}{prompt}" + (f' "{first}"' if first else "")


@dataclass
class ExportCell:
    index: int  # position among all cells, from 0
    cell_id: str
    source: str  # with IPython magics commented out
    tags: list[str]
    label: str = ""  # cell_label(): position from 1, [execution count], first line

    def __post_init__(self) -> None:
        self.label = self.label or f"cell {self.index + 1}"

    @property
    def number(self) -> str:
        """``cell 7``: the position alone, for a second mention in one message."""
        return f"cell {self.index + 1}"


@dataclass
class ExportPlan:
    path: Path
    notebook: Any
    exported: list[ExportCell]
    example: ExportCell | None
    others: list[ExportCell] = field(default_factory=list)  # untagged code cells
    model_uris: list[str] = field(default_factory=list)

    @property
    def code(self) -> str:
        return "\n\n".join(c.source for c in self.exported)


def _python_only(source: str) -> str:
    """Comment out IPython-only lines (magics, shell escapes): the service is plain Python."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            indent = line[: len(line) - len(stripped)]
            lines.append(f"{indent}# (notebook only) {stripped}")
        else:
            lines.append(line)
    return "\n".join(lines)


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _read_cells(path: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The notebook and its cells. A v4 notebook is read as the JSON it is (``nbformat`` costs
    about a second here: its ``jsonschema`` import builds the ``rfc3987_syntax`` grammars);
    any other version goes through ``nbformat``, which converts it to v4."""
    import json

    with path.open(encoding="utf-8") as fh:
        nb = json.load(fh)
    if not isinstance(nb, dict):
        raise ValueError("the file is JSON but not a notebook (no top-level object)")
    cells = nb.get("cells")
    if nb.get("nbformat") == 4 and isinstance(cells, list):
        if not all(isinstance(c, dict) for c in cells):
            raise ValueError("a cell is not a JSON object")
        return nb, cells
    import nbformat

    converted = nbformat.read(path, as_version=4)
    return converted, [dict(c) for c in converted.cells]


def read_plan(path: str | Path) -> ExportPlan:
    """Read ``path`` and sort its code cells by mlnb tag, refusing what cannot be exported."""
    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"notebook {str(path)!r} does not exist; check the path.")
    try:
        nb, cells = _read_cells(path)
    except Exception as exc:
        raise NotebookError(
            f"{path} is not a readable notebook ({type(exc).__name__}: {exc}); open and save "
            "it in Jupyter to repair it."
        ) from exc
    exported: list[ExportCell] = []
    example: ExportCell | None = None
    others: list[ExportCell] = []
    for index, cell in enumerate(cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        mlnb_tags = [t for t in tags if t.startswith("mlnb:")]
        unknown = [t for t in mlnb_tags if t not in KNOWN_TAGS]
        cell_id = str(cell.get("id") or f"cell-{index}")
        label = cell_label(index, cell)
        if unknown:
            raise NotebookError(
                f"{label} has the unknown tag {unknown[0]!r}; mlnb's tags are {EXPORT_TAG}, "
                f"{EXAMPLE_TAG} and {SKIP_TAG}: remove it or correct it.",
                cell=index,
            )
        if cell.get("cell_type") != "code":
            if mlnb_tags:
                raise NotebookError(
                    f"{label} is a {cell.get('cell_type')} cell tagged {mlnb_tags[0]}, but "
                    "only code cells can be exported: remove the tag.",
                    cell=index,
                )
            continue
        source = _source(cell)
        item = ExportCell(index, cell_id, _python_only(source), tags, label)
        if SKIP_TAG in tags:
            if len(mlnb_tags) > 1:
                raise NotebookError(
                    f"{item.label} is tagged both {SKIP_TAG} and {mlnb_tags[0]}; keep one.",
                    cell=index,
                )
            continue
        if mlnb_tags and not source.strip():
            raise NotebookError(
                f"{item.label} is tagged {mlnb_tags[0]} but empty; write its code or remove "
                "the tag.",
                cell=index,
            )
        if EXPORT_TAG in tags and EXAMPLE_TAG in tags:
            raise NotebookError(
                f"{item.label} is tagged both {EXPORT_TAG} and {EXAMPLE_TAG}; keep one.",
                cell=index,
            )
        if EXPORT_TAG in tags:
            exported.append(item)
        elif EXAMPLE_TAG in tags:
            if example is not None:
                raise NotebookError(
                    f"{item.label} and {example.label} are both tagged {EXAMPLE_TAG}; keep one.",
                    cell=index,
                )
            example = item
        else:
            others.append(item)
    if not exported:
        raise NotebookError(
            f"{path} has no cell tagged {EXPORT_TAG}; tag the cells the service needs "
            "(imports, preprocessing, model loading with mlnb.load_model, a predict function) "
            "in JupyterLab's cell toolbar or property inspector."
        )
    plan = ExportPlan(path, nb, exported, example, others)
    for item in exported:
        try:
            ast.parse(item.source)
        except SyntaxError as exc:
            raise NotebookError(
                f"{exc.msg} at line {exc.lineno} of {item.label}: the cell is not valid "
                "Python; fix the cell.",
                cell=item.index,
            ) from None
    check_names(plan)
    plan.model_uris = model_uris(plan.code)
    return plan


def _defined_names(source: str) -> set[str]:
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except SyntaxError:
        return set()
    return {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}


def _global_references(table: symtable.SymbolTable) -> set[str]:
    """Names a module's code (at any depth) reads from the module's global scope."""
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
    for child in table.get_children():
        names |= _global_references(child)
    return names


def check_names(plan: ExportPlan) -> None:
    """Every name the exported cells use must be defined by them, imported, or a builtin."""
    table = symtable.symtable(plan.code, "<exported cells>", "exec")
    defined = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    missing = sorted(
        _global_references(table) - defined - set(dir(builtins)) - {"__name__", "__file__"}
    )
    if not missing:
        return
    name = missing[0]
    user = next((c for c in plan.exported if name in _referenced(c.source)), plan.exported[0])
    source = next(
        (
            c
            for c in plan.others + ([plan.example] if plan.example else [])
            if name in _defined_names(c.source)
        ),
        None,
    )
    where = (
        f"it is defined in {source.label}, which is not tagged {EXPORT_TAG}"
        if source
        else "no cell defines it"
    )
    fix = (
        f"tag {source.number} {EXPORT_TAG}" if source else "define or import it in an exported cell"
    )
    more = f" (also undefined: {', '.join(missing[1:6])})" if len(missing) > 1 else ""
    raise NotebookError(
        f"name {name!r} is used by {user.label} but {where}; {fix}, or, for a model, load it "
        f"in an exported cell with mlnb.load_model('models:/NAME/VERSION'){more}.",
        cell=user.index,
    )


def _referenced(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def model_uris(code: str) -> list[str]:
    """String arguments of ``mlnb.load_model(...)`` / ``load_model(...)`` calls."""
    uris: list[str] = []
    for node in ast.walk(ast.parse(code)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        value = first.value if isinstance(first, ast.Constant) else None
        if name == "load_model" and isinstance(value, str) and value not in uris:
            uris.append(value)
    return uris
