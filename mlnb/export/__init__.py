"""``mlnb export``: the cells of a notebook tagged ``mlnb:export`` become a typed FastAPI
service folder, with its models and the files and data versions they read pinned by content
hash (``_reads``), verified from a copy outside the project before it is written."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.exceptions import NotebookError
from mlnb.export._plan import ExportPlan, read_plan

__all__ = ["ExportResult", "export_notebook", "read_plan"]


@dataclass
class ExportResult:
    folder: Path
    metadata: dict[str, Any]
    answers: dict[str, Any]
    parity: list[Any] | None = None


def export_notebook(
    notebook: str | Path,
    output: str | Path,
    *,
    force: bool = False,
    parity: bool = False,
    verify: bool = True,
    profile: str | Path | None = None,
    challenger: str | None = None,
    routing: str | None = None,
    canary_weight: float | None = None,
    follow: str | None = None,
    allow_pickle: bool = False,
    confine: str | Path | None = None,
) -> ExportResult:
    """Export ``notebook`` into ``output``. Nothing is written unless every check passes.

    ``profile`` is a training data profile (``Profile.save``) to copy into the service; by
    default the one recorded on the pinned model's run, if any.

    ``challenger`` (``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``) is pinned next to the
    champion; ``routing`` (shadow, canary, off) and ``canary_weight`` say how it is used and
    ``follow`` names a registry alias the service reloads when it moves (e.g. champion);
    environment variables of ``mlnb serve`` override them.

    Models and pinned files that are pickles (they run code when loaded) are refused unless
    ``allow_pickle``; the choice is recorded in ``mlnb-service.json`` and the service holds
    to it. With ``MLNB_SIGNING_KEY`` set, the manifest and every file's hash are signed
    (HMAC-SHA256); a service started with the key refuses anything that does not match.

    ``confine`` is a folder the files the exported cells read must lie in (after following
    symlinks) to be copied into the service, besides the project (JupyterLab passes its
    server root); a read outside raises :class:`~mlnb.exceptions.OutsideReadError`."""
    from mlnb.export._build import build_service, code_imports, replace_folder
    from mlnb.export._verify import SERVE_MODULES, ParityRun, Verifier
    from mlnb.serve import METADATA_FILE

    if routing is not None and routing not in ("shadow", "canary", "off"):
        raise NotebookError(f"routing {routing!r} is not shadow, canary or off.")
    if canary_weight is not None and not 0.0 <= canary_weight <= 1.0:
        raise NotebookError(f"canary weight {canary_weight} is not between 0 and 1 (e.g. 0.1).")
    output = Path(output)
    if output.exists():
        if not force:
            raise NotebookError(
                f"{output} already exists; pass --force to replace it, or choose another folder."
            )
        if any(output.iterdir()) and not (output / METADATA_FILE).exists():
            raise NotebookError(
                f"{output} exists and is not an mlnb export (no {METADATA_FILE}); refusing to "
                "replace it even with --force. Choose another folder."
            )
    plan: ExportPlan = read_plan(notebook)
    output.parent.mkdir(parents=True, exist_ok=True)
    # absolute: the check runs the cells in the notebook's folder, which a relative -o misses
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent)).resolve()
    # the check's fresh process and the parity run start now: their imports and the
    # notebook's run overlap the writing of the folder (they are stopped if it fails)
    verifier = Verifier() if verify else None
    parity_run = ParityRun(plan.path.resolve()) if parity else None
    try:
        if verifier is not None:
            verifier.warm([*SERVE_MODULES, *code_imports(plan.code)])
        serving = {
            "challenger": challenger,
            "routing": routing,
            "canary_weight": canary_weight,
            "follow": follow,
        }
        limit = Path(confine) if confine is not None else None
        metadata = build_service(
            plan,
            staging,
            profile,
            serving,
            allow_pickle,
            confine=limit,
            warm=verifier.warm if verifier is not None else None,
        )
        answers = verifier.run(staging, metadata) if verifier is not None else {}
        matched = parity_run.compare(answers) if parity_run is not None else None
        replace_folder(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if verifier is not None:
            verifier.close()
        if parity_run is not None:
            parity_run.close()
    _record_service(output, metadata)
    return ExportResult(output, metadata, answers, matched)


def _record_service(folder: Path, metadata: dict[str, Any]) -> None:
    """Lineage: the service reads the model versions pinned in it."""
    from mlnb.tracking import model_version_tags
    from mlnb.versioning import SERVICE_PREFIX, Project

    registry = Project.current().registry
    try:
        for model in metadata["models"]:
            if not model.get("name"):
                continue
            digest = model_version_tags(model["name"], model["version"]).get("mlnb.hash")
            if digest:
                registry.add_edge(
                    f"{SERVICE_PREFIX}{folder.resolve()}", model["name"], digest, "input"
                )
    except Exception:
        return  # lineage of a model versioned elsewhere is best effort
