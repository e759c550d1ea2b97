"""What ran in the notebook: executed cells, the parameters cell, snapshots.

The kernel sees code, not the notebook: JupyterLab sends each cell's id, papermill's
nbclient sends nothing but the source. So the recorder keeps every executed cell (source,
id when known, execution count, outcome) and, when it can find the notebook file, matches
executed sources against it to learn ids, positions and tags.

Where the notebook file is, in order: ``MLNB_NOTEBOOK``; ``__session__`` /
``JPY_SESSION_NAME`` (set by jupyter_server for a notebook's kernel); VS Code's
``__vsc_ipynb_file__``; the input path of a ``papermill`` command that started the kernel.
"""

from __future__ import annotations

import ast
import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CellRecorder", "ExecutedCell", "assigned_names", "locate_notebook"]

PAPERMILL_INJECTED_HEADER = "# Parameters"
PARAMETERS_TAG = "parameters"


@dataclass
class ExecutedCell:
    index: int  # position in the execution sequence of this kernel, from 0
    source: str
    cell_id: str | None
    execution_count: int | None
    started: float
    duration: float | None = None
    error: str | None = None
    backfilled: bool = False  # ran before mlnb was loaded (taken from IPython's history)

    @property
    def looks_injected(self) -> bool:
        """True when the cell has the shape of papermill's injected cell: its first line is
        exactly ``# Parameters``. (See :meth:`CellRecorder.is_injected`.)"""
        first = self.source.lstrip().split("\n", 1)[0]
        return first.strip() == PAPERMILL_INJECTED_HEADER


def assigned_names(source: str) -> list[str]:
    """Names bound at the top level of ``source`` (``a = 1``, ``a: int = 1``, ``a, b = …``)."""
    tree = _parse(source)
    names: list[str] = []

    def add(target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            if target.id not in names:
                names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                add(elt)

    for node in tree.body if tree else []:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                add(target)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            add(node.target)
    return names


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        # IPython syntax (magics, shell escapes) is not Python: drop those lines.
        kept = [
            line for line in source.splitlines() if not line.lstrip().startswith(("%", "!", "?"))
        ]
        try:
            return ast.parse("\n".join(kept))
        except SyntaxError:
            return None


def locate_notebook(user_ns: Mapping[str, Any] | None = None) -> Path | None:
    """The notebook file this kernel runs, when something tells us (see module doc)."""
    candidates: list[str | None] = [os.environ.get("MLNB_NOTEBOOK")]
    if user_ns is not None:
        candidates += [user_ns.get("__session__"), user_ns.get("__vsc_ipynb_file__")]
    candidates.append(os.environ.get("JPY_SESSION_NAME"))
    candidates.append(_papermill_input())
    for candidate in candidates:
        if candidate and str(candidate).endswith(".ipynb"):
            path = Path(str(candidate)).expanduser()
            if path.is_file():
                return path.resolve()
    return None


def _papermill_input() -> str | None:
    """Input notebook of a ``papermill IN OUT`` command that is this kernel's parent."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{os.getppid()}/cwd")
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not any(Path(a).name.startswith("papermill") for a in args[:3]):
        return None
    for arg in args[1:]:
        if arg.endswith(".ipynb") and "://" not in arg:
            return str(Path(cwd, arg))
    return None


@dataclass
class _NotebookFile:
    path: Path
    mtime: float
    cells: list[dict[str, Any]]  # {"id", "source", "tags", "cell_type"}
    by_id: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)


class CellRecorder:
    """Every cell the kernel executed, in order; fed by the IPython extension's hooks."""

    def __init__(self) -> None:
        self.cells: list[ExecutedCell] = []
        self.notebook_path: Path | None = None
        self._file: _NotebookFile | None = None
        self._seen_params_cell = False

    # -- feeding ---------------------------------------------------------------------
    def backfill(self, sources: list[str]) -> None:
        """Cells that ran before mlnb was loaded (IPython's ``In`` history)."""
        for number, source in enumerate(sources, start=1):
            if source.strip():
                self.cells.append(
                    ExecutedCell(len(self.cells), source, None, number, 0.0, backfilled=True)
                )

    def pre_cell(self, source: str, cell_id: str | None, execution_count: int | None) -> None:
        self.cells.append(
            ExecutedCell(len(self.cells), source, cell_id, execution_count, time.time())
        )

    def post_cell(
        self, error: BaseException | None, execution_count: int | None = None
    ) -> ExecutedCell | None:
        if not self.cells:
            return None
        cell = self.cells[-1]
        if execution_count is not None:
            cell.execution_count = execution_count
        if cell.duration is None and not cell.backfilled:
            cell.duration = time.time() - cell.started
        if error is not None:
            cell.error = f"{type(error).__name__}: {error}"
        return cell

    @property
    def current(self) -> ExecutedCell | None:
        return self.cells[-1] if self.cells else None

    # -- the notebook file -----------------------------------------------------------
    def notebook_file(self) -> _NotebookFile | None:
        path = self.notebook_path
        if path is None:
            return None
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if self._file is None or self._file.path != path or self._file.mtime != mtime:
            self._file = _read_notebook(path, mtime)
        return self._file

    def _position(self, cell: ExecutedCell, nb: _NotebookFile) -> int | None:
        if cell.cell_id and cell.cell_id in nb.by_id:
            return nb.by_id[cell.cell_id]
        return nb.by_source.get(cell.source.strip())

    def is_injected(self, cell: ExecutedCell) -> bool:
        """papermill's injected cell: shaped like it, and not a cell of the notebook file
        (papermill adds it to its copy only)."""
        if not cell.looks_injected:
            return False
        nb = self.notebook_file()
        return nb is None or self._position(cell, nb) is None

    def resolved_id(self, cell: ExecutedCell) -> str | None:
        if cell.cell_id:
            return cell.cell_id
        nb = self.notebook_file()
        if nb is None:
            return None
        position = self._position(cell, nb)
        return nb.cells[position]["id"] if position is not None else None

    # -- parameters ------------------------------------------------------------------
    def parameter_names(self, cell: ExecutedCell) -> tuple[list[str], list[str]] | None:
        """After ``cell`` ran: (parameter names, names papermill injected), or None.

        None unless ``cell`` is the notebook's ``parameters`` cell or papermill's injected
        cell. The parameters cell is the one tagged ``parameters`` in the notebook file, or,
        without the file, the cell executed just before papermill's injected cell (papermill
        always injects right after it).
        """
        if self.is_injected(cell):
            injected = assigned_names(cell.source)
            names = list(injected)
            before = self.cells[cell.index - 1] if cell.index > 0 else None
            if before is not None and not self.is_injected(before):
                names = [n for n in assigned_names(before.source) if n not in names] + names
            self._seen_params_cell = True
            return names, injected
        if self._is_tagged_parameters(cell):
            self._seen_params_cell = True
            return assigned_names(cell.source), []
        return None

    def _is_tagged_parameters(self, cell: ExecutedCell) -> bool:
        nb = self.notebook_file()
        if nb is None:
            return False
        position = self._position(cell, nb)
        return position is not None and PARAMETERS_TAG in nb.cells[position]["tags"]

    def find_parameters(self) -> tuple[list[str], list[str]] | None:
        """Search the whole history (used when mlnb is loaded after the parameters cell)."""
        found = None
        for cell in self.cells:
            names = self.parameter_names(cell)
            if names is not None:
                found = names
        return found

    # -- reports ---------------------------------------------------------------------
    def execution_flags(self) -> dict[str, Any]:
        """Re-executed cells and whether cells ran out of notebook order."""
        counts: dict[str, int] = {}
        for cell in self.cells:
            key = self.resolved_id(cell) or f"source:{hash(cell.source.strip())}"
            counts[key] = counts.get(key, 0) + 1
        reexecuted = sorted(k for k, n in counts.items() if n > 1 and not k.startswith("source:"))
        reexecuted_anonymous = sum(
            1 for k, n in counts.items() if n > 1 and k.startswith("source:")
        )
        nb = self.notebook_file()
        out_of_order: bool | None = None
        if nb is not None:
            positions = [p for p in (self._position(c, nb) for c in self.cells) if p is not None]
            out_of_order = any(b < a for a, b in itertools.pairwise(positions))
        return {
            "reexecuted": reexecuted,
            "reexecuted_without_id": reexecuted_anonymous,
            "out_of_order": out_of_order,
        }

    def code_text(self) -> str:
        """The code that ran, in execution order, with a header per cell."""
        parts = [
            "# Code executed in this kernel, in execution order (written by mlnb).\n"
            f"# notebook: {self.notebook_path or 'unknown'}\n"
        ]
        for cell in self.cells:
            header = f"# %% [{cell.index}] In[{cell.execution_count}]"
            cell_id = self.resolved_id(cell)
            if cell_id:
                header += f" cell_id={cell_id}"
            if self.is_injected(cell):
                header += " (papermill injected parameters)"
            if cell.backfilled:
                header += " (ran before mlnb was loaded)"
            if cell.error:
                header += f" ERROR {cell.error.splitlines()[0][:200]}"
            parts.append(f"{header}\n{cell.source.rstrip()}\n")
        return "\n".join(parts)

    def cells_json(self) -> list[dict[str, Any]]:
        return [
            {
                "index": c.index,
                "cell_id": self.resolved_id(c),
                "execution_count": c.execution_count,
                "started": c.started or None,
                "duration_s": round(c.duration, 6) if c.duration is not None else None,
                "error": c.error,
                "injected_parameters": self.is_injected(c),
                "backfilled": c.backfilled,
                "source": c.source,
            }
            for c in self.cells
        ]

    def snapshot(self) -> dict[str, Any]:
        """The notebook as it was live (nbformat 4 JSON as dicts): the saved file with each
        cell's last executed source, or (no file) the executed cells in first-execution
        order. Built without nbformat, whose import (jsonschema) takes seconds: this runs at
        a kernel's shutdown, when the run's end has 2.5 s."""
        import json
        import uuid

        latest: dict[str, ExecutedCell] = {}
        order: list[str] = []
        for cell in self.cells:
            key = self.resolved_id(cell) or f"anon-{cell.index}"
            if key not in latest:
                order.append(key)
            latest[key] = cell

        nb_file = self.notebook_file()
        nb: dict[str, Any] = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
        if nb_file is not None and self.notebook_path is not None:
            with self.notebook_path.open(encoding="utf-8") as fh:
                nb = json.load(fh)
            placed = set()
            for nb_cell in nb["cells"]:
                ran = latest.get(nb_cell.get("id", ""))
                if ran is not None:
                    placed.add(nb_cell["id"])
                    nb_cell["source"] = ran.source
                    if nb_cell.get("cell_type") == "code":
                        nb_cell["execution_count"] = ran.execution_count
            extra = [k for k in order if k not in placed]
        else:
            extra = order
        for key in extra:
            ran = latest[key]
            new: dict[str, Any] = {
                "cell_type": "code",
                "execution_count": ran.execution_count,
                "id": uuid.uuid4().hex[:8],
                "metadata": {},
                "outputs": [],
                "source": ran.source,
            }
            if self.is_injected(ran):
                # Where papermill puts it: right after the cell tagged `parameters`.
                new["metadata"]["tags"] = ["injected-parameters"]
                tagged = [
                    i
                    for i, c in enumerate(nb["cells"])
                    if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
                ]
                nb["cells"].insert(tagged[0] + 1 if tagged else 0, new)
                continue
            new["metadata"]["mlnb"] = {"not_in_saved_notebook": nb_file is not None}
            nb["cells"].append(new)
        return nb


def _read_notebook(path: Path, mtime: float) -> _NotebookFile | None:
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        raw_cells = data["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    cells = []
    for i, raw in enumerate(raw_cells):
        source = raw.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        cells.append(
            {
                "id": raw.get("id") or f"cell-{i}",
                "source": source,
                "tags": list(raw.get("metadata", {}).get("tags", [])),
                "cell_type": raw.get("cell_type"),
            }
        )
    nb = _NotebookFile(path, mtime, cells)
    for i, cell in enumerate(cells):
        nb.by_id.setdefault(cell["id"], i)
        if cell["cell_type"] == "code":
            nb.by_source.setdefault(cell["source"].strip(), i)
    return nb
