"""The one place where the ``/mlnb/`` API decides whether a path may be touched.

Every path a request reaches goes through :class:`ServerRoot` before anything runs, is read
or is written: the request's own fields (``path``, ``output``) and, for a pipeline, every path
its spec names (:func:`mlnb.pipeline.named_paths`: the notebooks, inputs and outputs of each
step, the pipeline file and its folder), plus the symlinks inside a folder that is versioned
or named as a step's data. A path is checked as it will be used: symlinks followed and ``..``
collapsed (:meth:`pathlib.Path.resolve`); what lands outside the server root is a 403 naming
the path, where it leads and why. An export is confined to the root too: it copies into the
service only the files its cells read that lie under the root once symlinks are followed
(``export_notebook(..., confine=root)``), and a read outside is a 403 naming it.

Request paths follow jupyter_server's contents API (``to_os_path``): they are relative to the
root, a leading ``/`` means the root, ``~`` is a plain name and a drive is refused. Paths in a
pipeline spec are the spec's own: relative to its folder, or absolute. Hidden files and folders
(a name starting with ``.``, or hidden by the OS) in a request are refused unless the server
allows them (``ContentsManager.allow_hidden``), as the contents API refuses them; the paths a
spec names are checked against the root only (the spec is a file the user could open).

A file swapped for a symlink between the check and its use is not caught: whoever can do that
can write in the root, and so can run any code in a kernel already.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlnb.labserver._errors import LabError

__all__ = ["ServerRoot"]

OUTSIDE_HINT = (
    "mlnb's JupyterLab API only touches files under the server root: move the file into it, "
    "or start JupyterLab in a folder that holds it (--ServerApp.root_dir)"
)

RELATIVE_HINT = "pass the path relative to the server root, as JupyterLab's file browser shows it"


class ServerRoot:
    """The server's root folder and the rule for what a request may touch under it."""

    def __init__(self, root: str | os.PathLike[str], *, allow_hidden: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.allow_hidden = allow_hidden

    def __repr__(self) -> str:
        return f"ServerRoot({str(self.root)!r}, allow_hidden={self.allow_hidden})"

    # -- request fields ---------------------------------------------------------------------
    def request_path(
        self,
        path: str,
        *,
        field: str = "path",
        what: str = "file",
        suffix: str | None = None,
        must_exist: bool = True,
    ) -> Path:
        """``path`` of a request (an API path, relative to the root) as a resolved path under
        the root: 400 when empty or not an API path, 403 outside the root or hidden, 404 when
        ``must_exist`` and it does not, 400 when it lacks ``suffix``."""
        if not path or not path.strip():
            raise LabError(400, f"{field}: no {what} path given", RELATIVE_HINT)
        if "\x00" in path:
            raise LabError(400, f"{field}: {path!r} contains a NUL byte", RELATIVE_HINT)
        if os.path.splitdrive(path)[0]:
            raise LabError(400, f"{field}: {path!r} is not a relative API path", RELATIVE_HINT)
        parts = [p for p in path.split("/") if p]
        named = Path(os.path.normpath(os.path.join(self.root, *parts)))
        if named != self.root and not named.is_relative_to(self.root):  # above it by ".."
            raise LabError(
                403,
                f"{field}: {path!r} is outside the server root {self.root}: it goes above it",
                OUTSIDE_HINT,
            )
        full = self.inside(named, field=field, written=path)
        if not self.allow_hidden and self._hidden(named):
            raise LabError(
                403,
                f"{field}: {path!r} is hidden (a name starting with '.') and this server does "
                "not allow hidden files",
                "rename it, or start JupyterLab with --ContentsManager.allow_hidden=True",
            )
        if must_exist and not full.exists():
            raise LabError(
                404,
                f"{field}: {what} {path!r} does not exist under the server root",
                "paths are relative to the server root, as in JupyterLab's file browser; "
                "check the path, it may have been renamed",
            )
        if suffix is not None and full.suffix != suffix:
            raise LabError(400, f"{field}: {path!r} is not a {suffix} file", f"pass a {what}")
        return full

    _relative_hint = (
        "pass the path relative to the server root, as JupyterLab's file browser shows it"
    )

    def _hidden(self, named: Path) -> bool:
        from jupyter_core.paths import is_hidden

        return bool(is_hidden(str(named), str(self.root)))

    # -- any path ---------------------------------------------------------------------------
    def inside(self, path: Path, *, field: str, written: str | None = None) -> Path:
        """``path`` resolved (symlinks followed, ``..`` collapsed); a 403 when that is not
        the root or under it. ``field`` and ``written`` (the path as the user wrote it) go
        into the message."""
        full = path.resolve()
        if full == self.root or full.is_relative_to(self.root):
            return full
        shown = repr(written if written is not None else str(path))
        lexical = Path(os.path.normpath(path))
        if lexical == self.root or lexical.is_relative_to(self.root):
            why = f"through a symlink it leads to {full}"
        elif written is not None and written != str(full):
            why = f"it resolves to {full}"
        else:
            why = "it is not under the root"
        raise LabError(
            403, f"{field}: {shown} is outside the server root {self.root}: {why}", OUTSIDE_HINT
        )

    def tree(self, folder: Path, *, field: str, written: str) -> None:
        """A 403 when a symlink anywhere under ``folder`` leads outside the root (what is read
        through a folder: versioning copies its files, a pipeline hashes its data)."""
        if not folder.is_dir():
            return
        stack = [str(folder)]
        while stack:
            top = stack.pop()
            try:
                entries = list(os.scandir(top))
            except OSError:
                continue  # unreadable: whatever reads it next says so
            for entry in entries:
                if entry.is_symlink():
                    target = Path(entry.path).resolve()
                    if target != self.root and not target.is_relative_to(self.root):
                        inner = os.path.relpath(entry.path, folder)
                        raise LabError(
                            403,
                            f"{field}: {written!r} holds the symlink {inner!r} to {target}, "
                            f"outside the server root {self.root}",
                            OUTSIDE_HINT,
                        )
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)

    def pipeline(self, pipeline: Any) -> None:
        """Every path ``pipeline`` (an :class:`mlnb.pipeline.Pipeline`) names is under the
        root, and the folders among them hold no symlink leading out; else a 403."""
        from mlnb.pipeline import named_paths

        source = self.relative(pipeline.source)
        for field, written, resolved in named_paths(pipeline):
            where = f"{source}: {field}"
            raw = Path(written) if Path(written).is_absolute() else pipeline.root / written
            self.inside(raw, field=where, written=written)
            if resolved != pipeline.root and not field.endswith("notebook"):
                self.tree(resolved, field=where, written=written)

    def relative(self, path: Path) -> str:
        """``path`` as the file browser shows it (relative to the root), else as given."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
