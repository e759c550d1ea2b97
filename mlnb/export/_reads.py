"""What the exported cells read, pinned into the service folder by content hash.

**Tracing.** The export check runs the exported cells in the notebook's folder (as JupyterLab
runs a notebook; the folder is also first on ``sys.path`` meanwhile). An audit hook
(:func:`sys.addaudithook`, installed once per process and idle outside a check) records, in
the thread that runs the cells and in threads started meanwhile:

* every file opened by Python's ``open``, ``io.open_code`` or ``os.open``: what ``pickle``,
  ``joblib.load``, ``numpy.load``, ``pandas.read_csv`` and the import of a project module
  call;
* every ``mlnb.load_version(ref)`` (it raises the audit event ``mlnb.load_version``).

String literals of the exported code that name an existing file of the project count as read
too: C libraries (pyarrow's parquet reader, LightGBM's ``model_file=``) open files where no
audit hook sees it.

**Sorting.** Ignored: Python's own files (``sys.prefix``, the standard library, site-packages,
``sys.path`` entries outside the project), the system's (``/proc``, ``/sys``, ``/dev``,
``/etc``, ``/usr``, ``/run``, ...), tools' settings in the home folder (``~/.config``,
``~/.ipython``, ``~/.jupyter``, ``~/.local``), mlnb's own store (``.mlnb``: versions come
through ``mlnb.load_version``, models through ``mlnb.load_model``), the service folder being
written, ``__pycache__``, files the cells wrote before reading them and files gone by the end
of the check. A file inside the project is copied to ``files/<its path from the project
root>`` and recorded with its BLAKE3 hash in ``mlnb-service.json``; a version is restored under
``versions/`` with its hash; a file outside the project stops the export, naming it and the
fix. "Inside" holds both for the path as the code named it and after following symlinks, so a
link in the project to a file elsewhere (``data/key -> ~/.ssh/id_rsa``) stops the export too,
naming the link and where it leads, before anything is copied: left out, the service would
not find the file, and copied, it would carry a file from outside the project. A caller may
confine the export to a folder (``export_notebook(..., confine=...)``; JupyterLab's export
passes its server root): a file outside it, by either test, stops the export the same way
(:class:`~mlnb.exceptions.OutsideReadError` with ``confined``).

**Run time** (``mlnb.serve``). Nothing of the user's code is rewritten: the service checks
every pinned copy against its hash, then runs in ``files/<the notebook's folder from the
project root>`` (``workdir`` in the metadata, also first on ``sys.path``), so the relative
paths of the cells name the pinned copies wherever the folder is copied, and
``mlnb.load_version(ref)`` returns the pinned version. Project modules the cells import are
pinned too (also when this process had imported them already, which reads nothing), and the
folders they import from go on the service's ``sys.path``. A path spelled absolute cannot follow
the folder: a string literal naming the project by its absolute path is refused at export.
Reads this cannot see (by C code through a computed path, in a subprocess) are caught by the
export check itself, which runs the service from a copy outside the project.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import site
import sys
import sysconfig
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.exceptions import NotebookError, OutsideReadError

__all__ = ["FILES_DIR", "VERSIONS_DIR", "ReadTrace", "check_folder", "pin_reads"]

FILES_DIR = "files"
VERSIONS_DIR = "versions"
_SYSTEM = (
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/etc",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/snap",
    "/var/lib",
    "/var/cache",
)
_HOME_TOOLS = (".config", ".ipython", ".jupyter", ".local", ".matplotlib")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHECK_LOCK = threading.RLock()  # one export check per process: chdir is process-wide
_ACTIVE: list[ReadTrace] = []
_INSTALLED: list[bool] = []


@dataclass
class Read:
    path: str  # absolute, symbolic links kept (followed only to decide what may be copied)
    given: str  # as the code spelled it
    cell: str  # the cell that read it
    index: int | None = None  # its position among the notebook's cells, from 0


@dataclass
class ReadTrace:
    """The files and versions read while the cells run (use as a context manager)."""

    reads: dict[str, Read] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)  # ref -> cell
    cell: str = ""  # the cell running now
    index: int | None = None  # its position among the notebook's cells, from 0
    _others: set[int | None] | None = None  # threads that were there before the first run

    def __enter__(self) -> ReadTrace:
        if not _INSTALLED:
            sys.addaudithook(_hook)
            _INSTALLED.append(True)
        if self._others is None:
            me = threading.get_ident()
            self._others = {t.ident for t in threading.enumerate() if t.ident != me}
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)

    def observe(self, event: str, args: tuple[Any, ...]) -> None:
        if self._others is None or threading.get_ident() in self._others:
            return
        if event == "mlnb.load_version":
            self.versions.setdefault(str(args[0]), self.cell)
            return
        target, mode, flags = args[0], args[1], args[2]
        if isinstance(target, int) or target is None:
            return
        given = os.fsdecode(target)
        path = os.path.normpath(os.path.join(os.getcwd(), given))
        if path in self.reads or path in self.written:
            return  # the first open decides: a file written before it is read is an output
        if (mode is None and int(flags or 0) & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+")
        ):
            self.written.add(path)
        else:
            self.reads[path] = Read(path, given, self.cell, self.index)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if (event != "open" and event != "mlnb.load_version") or not _ACTIVE:
        return
    try:
        _ACTIVE[-1].observe(event, args)
    except Exception:
        pass  # an audit hook must never break the open it sees


@contextlib.contextmanager
def check_folder(folder: Path) -> Iterator[None]:
    """Run in ``folder`` (first on ``sys.path`` too), one check at a time per process."""
    with _CHECK_LOCK:
        before = os.getcwd()
        entry = str(folder)
        os.chdir(folder)
        sys.path.insert(0, entry)
        try:
            yield
        finally:
            os.chdir(before)
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _ignored_prefixes(root: str, extra: list[str]) -> list[str]:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *_SYSTEM}
    prefixes.update(p for p in sysconfig.get_paths().values() if p)
    with contextlib.suppress(AttributeError):  # site.getsitepackages is missing in some venvs
        prefixes.update(site.getsitepackages())
    prefixes.add(site.getusersitepackages())
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            absolute = os.path.abspath(entry)
            if not _under(absolute, root) and not _under(root, absolute):
                prefixes.add(absolute)
    # mlnb's own package: the service installs it (an editable install of mlnb inside the
    # project, as in mlnb's own repository, is still not the project's code)
    prefixes.add(str(Path(__file__).resolve().parent.parent))
    home = os.path.expanduser("~")
    prefixes.update(os.path.join(home, name) for name in _HOME_TOOLS)
    prefixes.update(extra)
    found = {os.path.abspath(p) for p in prefixes}
    return sorted(found | {os.path.realpath(p) for p in found})


def _is_ignored(path: str, root: str, prefixes: list[str]) -> bool:
    """Python's, the system's, the tools' or mlnb's own: not an input of the service. Inside
    the project only prefixes inside it count (a virtualenv, ``.mlnb``, the service)."""
    if "__pycache__" in path.split(os.sep):
        return True
    inside = _under(path, root)
    real = os.path.realpath(path)
    return any(
        (_under(path, p) or (not inside and _under(real, p))) and (not inside or _under(p, root))
        for p in prefixes
    )


def _literals(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and 0 < len(node.value) < 1024
        and "\n" not in node.value
        and "\x00" not in node.value
    ]


def scan_literals(cells: list[tuple[str, str, int]], trace: ReadTrace, root: str, cwd: str) -> None:
    """Existing project files named by the code (label, source, position per cell) count as
    read; an absolute path into the project is refused (it cannot follow the service folder)."""
    for label, source, index in cells:
        for text in _literals(source):
            path = os.path.normpath(os.path.join(cwd, text))
            if os.path.isabs(text) and _under(path, root) and root != os.sep:
                relative = os.path.relpath(path, cwd)
                raise NotebookError(
                    f"{label} names {text!r}, a path inside the project spelled from the "
                    "filesystem's root; the service runs from its own folder (copied "
                    "anywhere, or in the Docker image), where that path does not exist. Use "
                    f"the path relative to the notebook's folder: {relative!r}.",
                    cell=index,
                )
            if path not in trace.reads and path not in trace.written and os.path.isfile(path):
                trace.reads[path] = Read(path, text, label, index)


def pin_reads(
    trace: ReadTrace,
    folder: Path,
    root: Path,
    cwd: Path,
    ignore: list[Path],
    confine: Path | None = None,
) -> dict[str, Any]:
    """Copy what ``trace`` saw into ``folder`` (``files/``, ``versions/``) and describe it for
    ``mlnb-service.json``: ``{"workdir", "sys_path", "files", "versions"}`` (None and empty
    lists when nothing was read).

    A file is copied only when it lies inside the project ``root`` (and inside ``confine``
    when given) both as the code named it and after following symlinks; otherwise nothing is
    copied and :class:`~mlnb.exceptions.OutsideReadError` names each such read and the file
    it leads to (``confined`` when some lie outside ``confine``)."""
    from mlnb.versioning import hash_file

    root_text = str(root)
    limits = [_Limit(root_text, False)]
    if confine is not None:
        limits.append(_Limit(str(Path(confine).resolve()), True))
    prefixes = _ignored_prefixes(root_text, [str(p) for p in ignore])
    bases = _project_modules(trace, root_text, prefixes, limits[-1].folder)
    inside: list[tuple[Read, str]] = []
    outside: list[tuple[Read, str, _Limit]] = []
    for read in trace.reads.values():
        if not os.path.isfile(read.path) or _is_ignored(read.path, root_text, prefixes):
            continue
        real = os.path.realpath(read.path)
        # the confinement, the caller's rule, speaks first
        out = next((lim for lim in reversed(limits) if not lim.holds(read.path, real)), None)
        if out is None:
            inside.append((read, real))
        else:
            outside.append((read, real, out))
    if outside:
        raise _outside_error(outside, root, limits)
    files = []
    for read, real in sorted(inside, key=lambda item: item[0].path):
        source = Path(os.path.relpath(read.path, root_text)).as_posix()
        target = folder / FILES_DIR / source
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, target)  # the file checked, not whatever the link names now
        files.append(
            {
                "path": f"{FILES_DIR}/{source}",
                "source": source,
                "hash": hash_file(target),
                "size": target.stat().st_size,
                "read_by": read.cell,
            }
        )
    versions = [_pin_version(ref, cell, folder) for ref, cell in sorted(trace.versions.items())]
    workdir = FILES_DIR
    if _under(str(cwd), root_text) and cwd != root:
        workdir = f"{FILES_DIR}/{Path(os.path.relpath(cwd, root_text)).as_posix()}"
    if not files:
        return {"workdir": None, "sys_path": [], "files": [], "versions": versions}
    (folder / workdir).mkdir(parents=True, exist_ok=True)
    imports = [f"{FILES_DIR}/{Path(os.path.relpath(b, root_text)).as_posix()}" for b in bases]
    sys_path = [workdir, *(p.removesuffix("/.") for p in sorted(imports) if p != workdir)]
    return {"workdir": workdir, "sys_path": sys_path, "files": files, "versions": versions}


@dataclass(frozen=True)
class _Limit:
    """A folder the export may copy from: the project, or the folder it is confined to."""

    folder: str  # resolved
    confined: bool

    def holds(self, path: str, real: str) -> bool:
        """``path`` (as named) and ``real`` (symlinks followed) both lie inside."""
        return _under(path, self.folder) and _under(real, os.path.realpath(self.folder))


def _project_modules(trace: ReadTrace, root: str, prefixes: list[str], limit: str) -> set[str]:
    """Modules of the project (under ``limit`` too) loaded in this process count as read
    (importing one again opens nothing); returns the folders they import from (``src`` for
    ``src/pkg/mod.py``). One loaded from elsewhere in the project is not this export's: a
    cell that imports it fails the export check, which runs from a copy."""
    bases: set[str] = set()
    for name, module in sys.modules.copy().items():  # another thread may import meanwhile
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or name in ("__main__", "mlnb_export_check"):
            continue
        path = os.path.abspath(file)
        if not _under(path, root) or not _under(path, limit):
            continue
        if _is_ignored(path, root, prefixes) or not os.path.isfile(path):
            continue
        trace.reads.setdefault(path, Read(path, file, f"import {name}"))
        base = os.path.dirname(path)
        package = os.path.basename(path).startswith("__init__.")
        for _ in range(name.count(".") + (1 if package else 0)):
            base = os.path.dirname(base)
        if _under(base, root):
            bases.add(base)
    return bases


def _describe(read: Read, real: str) -> str:
    given = "" if read.given == read.path else f" as {read.given!r}"
    link = "" if real == read.path else f", which leads through a symlink to {real}"
    return f"{read.path} (read by {read.cell}{given}){link}"


def _outside_error(
    outside: list[tuple[Read, str, _Limit]], root: Path, limits: list[_Limit]
) -> OutsideReadError:
    confined = [item for item in outside if item[2].confined]
    chosen = confined or outside
    limit = limits[-1] if confined else limits[0]
    reads = [_describe(read, real) for read, real, _ in chosen]
    more = f" and {len(reads) - 5} more" if len(reads) > 5 else ""
    shown = "; ".join(reads[:5]) + more
    linked = [(read, real) for read, real, _ in chosen if real != read.path]
    plain = [read for read, real, _ in chosen if real == read.path]
    fixes = []
    if plain:
        name = Path(plain[0].path).name
        fixes.append(
            f"Copy the file under {limit.folder} and read it by a path relative to the notebook"
            if limit.confined
            else f"Copy the file into the project (e.g. {root / 'data' / name}) and read it by "
            "a path relative to the notebook"
        )
    if linked:
        read, real = linked[0]
        fixes.append(
            "A symlink is followed before anything is copied, so a link does not bring a file "
            "from outside in: if the service may carry the file, replace the link with a copy "
            f"of it (e.g. `cp --remove-destination {real} {read.path}`)"
        )
    if not limit.confined:
        fixes.append(
            "Or version the file (mlnb.version(path, name=...)) and read it with "
            "mlnb.load_version(name)"
        )
    fix = ". ".join(fixes)
    where = (
        f"the folder this export is confined to, {limit.folder}"
        if limit.confined
        else f"the project {root}"
    )
    return OutsideReadError(
        f"the exported cells read {len(reads)} file(s) outside {where}: {shown}. The service "
        "folder carries only files of the project (it runs elsewhere, e.g. in the Docker "
        f"image), and nothing was copied. {fix}.",
        folder=limit.folder,
        reads=reads,
        confined=limit.confined,
        cell=chosen[0][0].index,
    )


def _pin_version(ref: str, cell: str, folder: Path) -> dict[str, Any]:
    """Restore the version ``ref`` names under ``folder/versions/`` (what the service's
    ``mlnb.load_version(ref)`` returns), with its hash."""
    from mlnb._text import slug
    from mlnb.versioning import Project, checkout, hash_file, hash_tree

    record = Project.current().registry.resolve(ref)
    suffix = {"dataframe": ".parquet", "config": ".json"}.get(record.kind, "")
    name = Path(record.path or "").name or f"{slug(record.name, 'version')}{suffix}"
    target = folder / VERSIONS_DIR / record.hash[:16] / name
    if not target.exists():
        checkout(ref, target, force=True)
    digest = hash_tree(target)[0] if target.is_dir() else hash_file(target)
    return {
        "ref": ref,
        "resolved": record.ref,
        "kind": record.kind,
        "format": record.meta.get("format"),
        "path": target.relative_to(folder).as_posix(),
        "hash": digest,
        "read_by": cell,
    }
