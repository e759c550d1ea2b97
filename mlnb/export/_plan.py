"""Reading a notebook for export: its tagged cells, the static check, the model URIs."""

from __future__ import annotations

import ast
import builtins
import symtable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.exceptions import NotebookError

__all__ = ["ExportCell", "ExportPlan", "read_plan"]

EXPORT_TAG = "mlnb:export"
EXAMPLE_TAG = "mlnb:example"
SKIP_TAG = "mlnb:skip"
KNOWN_TAGS = {EXPORT_TAG, EXAMPLE_TAG, SKIP_TAG, "parameters", "injected-parameters"}


@dataclass
class ExportCell:
    index: int  # position among all cells, from 0
    cell_id: str
    source: str  # with IPython magics commented out
    tags: list[str]

    @property
    def label(self) -> str:
        return f"cell {self.index + 1} (id {self.cell_id})"


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


def read_plan(path: str | Path) -> ExportPlan:
    """Read ``path`` and sort its code cells by mlnb tag, refusing what cannot be exported."""
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"notebook {str(path)!r} does not exist; check the path.")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:
        raise NotebookError(
            f"{path} is not a readable notebook ({type(exc).__name__}: {exc}); open and save "
            "it in Jupyter to repair it."
        ) from exc
    exported: list[ExportCell] = []
    example: ExportCell | None = None
    others: list[ExportCell] = []
    for index, cell in enumerate(nb.cells):
        tags = list(cell.get("metadata", {}).get("tags", []))
        mlnb_tags = [t for t in tags if t.startswith("mlnb:")]
        unknown = [t for t in mlnb_tags if t not in KNOWN_TAGS]
        cell_id = str(cell.get("id") or f"cell-{index}")
        if unknown:
            raise NotebookError(
                f"cell {index + 1} (id {cell_id}) has the unknown tag {unknown[0]!r}; mlnb's "
                f"tags are {EXPORT_TAG}, {EXAMPLE_TAG} and {SKIP_TAG}."
            )
        if cell.cell_type != "code":
            if mlnb_tags:
                raise NotebookError(
                    f"cell {index + 1} (id {cell_id}) is a {cell.cell_type} cell tagged "
                    f"{mlnb_tags[0]}; only code cells can be exported."
                )
            continue
        item = ExportCell(index, cell_id, _python_only(cell.source), tags)
        if SKIP_TAG in tags:
            if len(mlnb_tags) > 1:
                raise NotebookError(
                    f"{item.label} is tagged both {SKIP_TAG} and {mlnb_tags[0]}; keep one."
                )
            continue
        if mlnb_tags and not cell.source.strip():
            raise NotebookError(
                f"{item.label} is tagged {mlnb_tags[0]} but empty; write its code or remove "
                "the tag."
            )
        if EXPORT_TAG in tags and EXAMPLE_TAG in tags:
            raise NotebookError(
                f"{item.label} is tagged both {EXPORT_TAG} and {EXAMPLE_TAG}; keep one."
            )
        if EXPORT_TAG in tags:
            exported.append(item)
        elif EXAMPLE_TAG in tags:
            if example is not None:
                raise NotebookError(
                    f"{item.label} and {example.label} are both tagged {EXAMPLE_TAG}; keep one."
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
    for cell in exported:
        try:
            ast.parse(cell.source)
        except SyntaxError as exc:
            raise NotebookError(
                f"{cell.label} is not valid Python: {exc.msg} (line {exc.lineno}); fix the cell."
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
        f"tag {source.label} {EXPORT_TAG}" if source else "define or import it in an exported cell"
    )
    more = f" (also undefined: {', '.join(missing[1:6])})" if len(missing) > 1 else ""
    raise NotebookError(
        f"name {name!r} is used by {user.label} but {where}; {fix}, or, for a model, load it "
        f"in an exported cell with mlnb.load_model('models:/NAME/VERSION'){more}."
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
