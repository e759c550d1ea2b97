"""Champion and challenger, and following a registry alias.

The exported code binds its models with ``mlnb.load_model(URI)``, which inside a service
reads ``mlnb.tracking.pinned_models`` (URI -> a local folder checked by hash). Running the
same code again with the first model's URI pinned to another version's files gives that
version's endpoints: the challenger (``mlnb export --challenger URI`` or
``MLNB_CHALLENGER=models:/NAME@challenger``), or a new champion when the service follows an
alias (``MLNB_FOLLOW=champion``): the alias is resolved at start-up and then by a background
poller every ``MLNB_FOLLOW_INTERVAL`` seconds; a new version is downloaded into the service
folder, hashed, loaded, made to answer the example, then swapped in; requests in flight
finish on the model they started with.

Routing (``MLNB_ROUTING``): ``shadow`` (default when there is a challenger) answers with the
champion and runs the challenger off the response path, its answers in the audit log;
``canary`` answers a share ``MLNB_CANARY_WEIGHT`` (0.1) of requests with the challenger,
sticky per ``X-Client-ID``; ``off`` ignores the challenger.
"""

from __future__ import annotations

import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from blake3 import blake3

from mlnb._text import first_line, slug
from mlnb.serve._runners import EndpointPlan, Slot, build_slot
from mlnb.serve._service import Service, ServiceError, load_variant, verify_models
from mlnb.serve._settings import ROUTING_MODES

__all__ = ["MODES", "Follower", "Router", "fetch_model", "load_challenger", "pinned_record"]

log = logging.getLogger("mlnb.serve.routing")
MODES = ROUTING_MODES


def fetch_model(folder: Path, uri: str) -> dict[str, Any]:
    """Resolve a ``models:/`` URI in the registry and copy that version into
    ``folder/model`` (once); the pinned-model record, with its hash."""
    from mlnb.tracking import download_model_version, find_model_version

    if not uri.startswith("models:/"):
        raise ServiceError(
            f"{uri!r} is not a registry URI; give models:/NAME/VERSION or models:/NAME@ALIAS."
        )
    found = find_model_version(uri)
    name, version = found.name, found.version
    target = folder / "model" / f"{slug(name, 'model')}-v{version}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            download_model_version(found, staging)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return pinned_record(
        folder, target, uri, f"models:/{name}/{version}", name, version, found.run_id
    )


def drop_local_paths(target: Path) -> None:
    """Remove the lines of ``target/MLmodel`` that name where the model was stored on the
    machine that logged it (``artifact_path: file:///...``): MLflow loads without them and
    the copy tells nothing of that machine."""
    mlmodel = target / "MLmodel"
    if not mlmodel.is_file():
        return
    lines = mlmodel.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [
        line
        for line in lines
        if not (
            line.startswith("artifact_path:")
            and line.split(":", 1)[1].strip().strip("'\"").startswith(("file:", "/"))
        )
    ]
    if len(kept) != len(lines):
        mlmodel.write_text("".join(kept), encoding="utf-8")


def pinned_record(
    folder: Path,
    target: Path,
    uri: str,
    resolved: str,
    name: str | None,
    version: str | None,
    run_id: str | None,
) -> dict[str, Any]:
    """The service metadata's record of a model copied to ``target``, with its hashes and
    its serialization (checked against the pin of when it was logged: what the service will
    trust when it loads it)."""
    from mlnb.tracking import expect_model_files, verify_model_files
    from mlnb.versioning import hash_tree

    serialization = verify_model_files(target, resolved)
    expect_model_files(target, serialization)
    drop_local_paths(target)
    digest, entries = hash_tree(target)
    return {
        "uri": uri,
        "resolved": resolved,
        "name": name,
        "version": version,
        "run_id": run_id,
        "path": target.relative_to(folder).as_posix(),
        "hash": digest,
        "files": [{"path": e.path, "hash": e.hash, "size": e.size} for e in entries],
        "serialization": serialization,
    }


def variant_with(service: Service, record: dict[str, Any]) -> Service:
    """``service``'s code run with its first model replaced by ``record``'s files (refused,
    like the pinned ones, when they are a pickle and the export did not allow pickles)."""
    from mlnb.serve._pickles import check_pickle_policy

    check_pickle_policy(service.folder, service.metadata, [record])
    models = list(service.metadata.get("models") or [])
    if not models:
        raise ServiceError("the service loads no model; there is nothing to replace.")
    primary = models[0]
    replaced = {**record, "uri": primary["uri"]}
    metadata = {**service.metadata, "models": [replaced, *models[1:]]}
    return load_variant(service, {primary["uri"]: service.folder / record["path"]}, metadata)


def load_challenger(
    service: Service, plans: dict[str, EndpointPlan], uri: str | None
) -> tuple[Slot | None, str | None]:
    """The challenger's slot, or None and the reason it could not load (never raises)."""
    pinned: dict[str, Any] = service.metadata.get("challenger") or {}
    if not uri and not pinned:
        return None, None
    what = uri or pinned.get("uri")
    try:
        if uri:
            record = fetch_model(service.folder, uri)
        else:
            verify_models(service.folder, [pinned])
            record = pinned
        slot = build_slot(variant_with(service, record), "challenger", plans)
        slot.model["uri"] = record.get("uri")
        return slot, None
    except Exception as exc:
        reason = (
            f"the challenger {what} failed to load ({first_line(exc)}); serving the champion "
            "only. Check the URI and the registry, or unset MLNB_CHALLENGER."
        )
        log.error(reason)
        return None, reason


class Router:
    def __init__(
        self,
        champion: Slot,
        challenger: Slot | None,
        mode: str,
        weight: float,
        challenger_error: str | None = None,
    ) -> None:
        self.champion = champion
        self.challenger = challenger
        self.mode = mode
        self.weight = weight
        self.challenger_error = challenger_error
        self.reloaded_at: str | None = None

    @property
    def shadowing(self) -> bool:
        return self.mode == "shadow" and self.challenger is not None

    def choose(self, client_id: str | None) -> Slot:
        """The slot that answers (canary: the challenger for a sticky share of clients)."""
        if self.mode != "canary" or self.challenger is None:
            return self.champion
        if client_id:
            bucket = int.from_bytes(blake3(client_id.encode()).digest()[:8], "big") / 2**64
        else:
            bucket = random.random()
        return self.challenger if bucket < self.weight else self.champion

    def swap_champion(self, slot: Slot) -> Slot:
        old, self.champion = self.champion, slot
        self.reloaded_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # requests that took the old slot finish on it; its threads go after a grace period
        timer = threading.Timer(60.0, old.close)
        timer.daemon = True
        timer.start()
        return old

    def to_dict(self) -> dict[str, Any]:
        def describe(slot: Slot | None) -> dict[str, Any] | None:
            if slot is None:
                return None
            return {k: slot.model.get(k) for k in ("name", "version", "uri", "hash")}

        return {
            "mode": self.mode if self.challenger is not None else "off",
            "requested_mode": self.mode,
            "canary_weight": self.weight,
            "champion": describe(self.champion),
            "challenger": describe(self.challenger),
            "challenger_error": self.challenger_error,
            "reloaded_at": self.reloaded_at,
        }


class Follower:
    """Polls the registry for the version an alias points at and swaps it in."""

    def __init__(
        self,
        router: Router,
        plans: dict[str, EndpointPlan],
        alias: str,
        interval: float,
        warm_up: Callable[[Slot], None],
        on_event: Callable[[str, str], Any],
        on_outcome: Callable[[str], None],
    ) -> None:
        self.router = router
        self.plans = plans
        self.alias = alias
        self.interval = interval
        self.warm_up = warm_up
        self.on_event = on_event
        self.on_outcome = on_outcome
        self.error: str | None = None
        self.checked_at: str | None = None
        self._stop = threading.Event()
        name = router.champion.model.get("name")
        self.uri = f"models:/{name}@{alias}" if name else None
        self._failed_version: str | None = None
        self._thread = threading.Thread(target=self._run, name="mlnb-follow", daemon=True)
        if self.uri is None:
            self.error = (
                "cannot follow an alias: the served model is not a registered model version; "
                "load it as models:/NAME/... in the notebook."
            )
            log.error(self.error)
        else:
            self.poll()  # at start-up: serve what the alias points at now
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> bool:
        """One check; True when a new champion was swapped in."""
        assert self.uri is not None
        champion = self.router.champion
        try:
            from mlnb.config import get_settings
            from mlnb.tracking import get_client, resolve_model_version

            found = resolve_model_version(get_client(get_settings()), self.uri)
            version = str(found.version)
            self.checked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if version == str(champion.model.get("version")) or version == self._failed_version:
                self.error = None if version != self._failed_version else self.error
                return False
        except Exception as exc:
            self.error = f"cannot resolve {self.uri}: {first_line(exc)}"
            log.warning(self.error)
            return False
        try:
            record = fetch_model(champion.service.folder, self.uri)
            service = variant_with(champion.service, record)
            slot = build_slot(service, "champion", self.plans)
            slot.model["uri"] = self.uri
            self.warm_up(slot)
        except Exception as exc:
            self._failed_version = version
            self.error = (
                f"version {version} of {self.uri} failed to load ({first_line(exc)}); still "
                f"serving version {champion.model.get('version')}."
            )
            self.on_outcome("failed")
            self.on_event("reload_failed", self.error)
            return False
        old = self.router.swap_champion(slot)
        self.error = None
        self.on_outcome("ok")
        log.warning(
            "now serving %s (was %s), following %s",
            slot.label,
            old.label,
            self.uri,
            extra={"event": "reload"},
        )
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "uri": self.uri,
            "interval_s": self.interval,
            "checked_at": self.checked_at,
            "error": self.error,
        }

    def close(self) -> None:
        self._stop.set()
