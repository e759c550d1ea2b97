"""A step's fingerprint: what decides whether its earlier run can stand in for a new one.

It hashes the step's code cells (comments, blank lines, markdown and ``mlnb:skip`` cells do
not count), its effective params, the content of its input files, its upstream steps'
fingerprints and the environment's package hash. Each part is kept, so ``mlnb pipeline
status`` can say which one changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blake3 import blake3

__all__ = ["code_hash", "fingerprint", "input_hashes"]

SKIP_TAG = "mlnb:skip"


def _meaningful(source: str) -> str:
    lines = []
    for line in source.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lines.append(line.rstrip())
    return "\n".join(lines)


def code_hash(notebook: Path) -> str:
    """Hash of the code that would run: code cells, minus comment-only lines and skip cells."""
    doc = json.loads(notebook.read_text(encoding="utf-8"))
    parts = []
    for cell in doc.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell.get("source", "")
        parts.append(_meaningful("".join(source) if isinstance(source, list) else source))
    return blake3("\n\x00\n".join(parts).encode()).hexdigest()


def input_hashes(paths: dict[str, Path], cache: Any) -> dict[str, str | None]:
    """Content hash of each input (None when it does not exist)."""
    from mlnb.versioning import hash_tree

    out: dict[str, str | None] = {}
    for name, path in paths.items():
        if path.is_dir():
            out[name] = hash_tree(path, cache)[0]
        elif path.is_file():
            out[name] = cache.hash(path)
        else:
            out[name] = None
    return out


def fingerprint(parts: dict[str, Any]) -> str:
    return blake3(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
