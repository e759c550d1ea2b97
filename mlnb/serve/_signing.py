"""Signed exports: ``mlnb-service.json`` and every file of the service folder under one HMAC.

At export, with ``MLNB_SIGNING_KEY`` set, the manifest gets ``integrity`` (the BLAKE3 hash of
every file in the folder, by path) and ``signature``: HMAC-SHA256 with that key over the
canonical serialization of the whole manifest except ``signature`` (JSON, keys sorted, no
spaces, ASCII). Everything the service trusts is in it: the models' and files' hashes,
``service.py``, ``allow_pickle``, the settings.

At start-up, before any model is loaded or code imported (:func:`check_signature`):

* ``MLNB_SIGNING_KEY`` set: the signature is required. An unsigned manifest, a signature that
  does not match (the manifest edited, or another key), a listed file missing or changed, or
  a file that is not listed (outside ``audit/``, ``__pycache__/`` and model folders the
  service fetched itself under ``model/``) stops the service with a :class:`SignatureError`
  naming it. Bytecode caches next to the sources are then ignored (``sys.pycache_prefix``
  points outside the folder), so a planted ``.pyc`` is never run.
* ``MLNB_SIGNING_KEY`` not set: nothing is checked beyond the hashes. A signed service
  starts, logs a warning that its signature was not checked, and ``/version`` says
  ``"signature": {"signed": true, "verified": false}``. The check is the key's holder's to
  ask for: whoever can write the folder could strip the signature as easily.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlnb.exceptions import SignatureError
from mlnb.serve._service import METADATA_FILE

__all__ = ["ENV_KEY", "SignatureError", "check_signature", "sign_manifest", "signing_key"]

ENV_KEY = "MLNB_SIGNING_KEY"
ALGORITHM = "hmac-sha256"
#: written by the service itself at run time, never trusted as code
_RUNTIME_DIRS = ("audit",)
_CACHE_PREFIX = os.path.join(tempfile.gettempdir(), "mlnb-pycache-")
_FIX = "export the notebook again with MLNB_SIGNING_KEY set (mlnb export NOTEBOOK -o DIR --force)"

log = logging.getLogger("mlnb.serve")


def signing_key(raw: str | None = None) -> bytes | None:
    """``raw`` (else ``MLNB_SIGNING_KEY``, what ``mlnb export`` signs with) as bytes, or
    None when unset or empty. A service takes it from ``ServeSettings.signing_key``."""
    from mlnb.config import env_str

    raw = env_str(ENV_KEY) if raw is None else raw
    if raw is None or not raw.strip():
        return None
    return raw.encode("utf-8", "surrogateescape")


def key_id(key: bytes) -> str:
    """A fingerprint of ``key`` that tells keys apart without revealing them."""
    return hmac.new(key, b"mlnb signing key id", hashlib.sha256).hexdigest()[:16]


def canonical(manifest: dict[str, Any]) -> bytes:
    """The bytes signed: the manifest without ``signature``, as canonical JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii")


def _pinned_models(manifest: dict[str, Any]) -> set[str]:
    records = [*(manifest.get("models") or []), manifest.get("challenger") or {}]
    return {str(r["path"]).rstrip("/") for r in records if r.get("path")}


def _ignored(relative: Path, listed_models: set[str]) -> bool:
    parts = relative.parts
    if "__pycache__" in parts or parts[0] in _RUNTIME_DIRS:
        return True
    # a model version the service fetched itself (MLNB_CHALLENGER, a followed alias):
    # checked by the pickle policy when it is loaded, never imported as code
    return len(parts) > 2 and parts[0] == "model" and f"model/{parts[1]}" not in listed_models


def folder_files(folder: Path, listed_models: set[str]) -> dict[str, str]:
    """BLAKE3 of every file in ``folder`` by POSIX path (the manifest itself, runtime
    folders and bytecode caches left out)."""
    from mlnb.versioning import hash_file

    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.as_posix() == METADATA_FILE or _ignored(relative, listed_models):
            continue
        if path.is_file():
            found[relative.as_posix()] = hash_file(path)
    return found


def sign_manifest(manifest: dict[str, Any], folder: Path, key: bytes) -> dict[str, Any]:
    """``manifest`` with ``integrity`` and ``signature`` for the files now in ``folder``."""
    signed = {k: v for k, v in manifest.items() if k not in ("integrity", "signature")}
    files = folder_files(folder, _pinned_models(manifest))
    signed["integrity"] = {"algorithm": "blake3", "files": files}
    signed = dict(json.loads(json.dumps(signed, default=str)))  # what a reader will parse
    value = hmac.new(key, canonical(signed), hashlib.sha256).hexdigest()
    signed["signature"] = {"algorithm": ALGORITHM, "key_id": key_id(key), "value": value}
    return signed


def check_signature(
    folder: Path, manifest: dict[str, Any], raw_key: str | None = None
) -> dict[str, Any]:
    """Verify the export's signature as the module docstring says (with ``raw_key``, else
    ``MLNB_SIGNING_KEY``); the state for ``/version``: ``{"signed", "verified", "key_id"}``.
    Raises SignatureError."""
    signature = manifest.get("signature")
    key = signing_key(raw_key)
    signed = isinstance(signature, dict)
    state: dict[str, Any] = {
        "signed": signed,
        "verified": False,
        "key_id": signature.get("key_id") if isinstance(signature, dict) else None,
    }
    if key is None:
        if signed:
            log.warning(
                "%s is signed (key id %s) but %s is not set: the signature was NOT checked. "
                "Set %s to the export's key to require it.",
                folder / METADATA_FILE,
                state["key_id"],
                ENV_KEY,
                ENV_KEY,
            )
        return state
    where = folder / METADATA_FILE
    if not isinstance(signature, dict):
        raise SignatureError(
            f"refusing to start: {ENV_KEY} is set but {where} is not signed; {_FIX}."
        )
    if signature.get("algorithm") != ALGORITHM:
        raise SignatureError(
            f"refusing to start: {where} is signed with {signature.get('algorithm')!r}, not "
            f"{ALGORITHM}; {_FIX}."
        )
    expected = hmac.new(key, canonical(manifest), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), str(signature.get("value", "")).encode()):
        other = (
            f" It was signed with key id {state['key_id']}; {ENV_KEY} has key id {key_id(key)}."
            if state["key_id"] != key_id(key)
            else " The key is the export's: the manifest was changed after it was signed."
        )
        raise SignatureError(
            f"refusing to start: the signature of {where} does not match its contents.{other} "
            f"Nothing was loaded; {_FIX}."
        )
    _check_files(folder, manifest)
    # bytecode is read from (and written to) a cache of this process only, never the folder's
    if sys.pycache_prefix is None or not sys.pycache_prefix.startswith(_CACHE_PREFIX):
        cache = tempfile.mkdtemp(prefix="mlnb-pycache-")
        atexit.register(shutil.rmtree, cache, True)
        sys.pycache_prefix = cache
    state["verified"] = True
    return state


def _check_files(folder: Path, manifest: dict[str, Any]) -> None:
    listed: dict[str, str] = dict((manifest.get("integrity") or {}).get("files") or {})
    if not listed:
        raise SignatureError(
            f"refusing to start: the signed {METADATA_FILE} lists no files; {_FIX}."
        )
    present = folder_files(folder, _pinned_models(manifest))
    changed = sorted(p for p, h in listed.items() if present.get(p) != h)
    if changed:
        missing = [p for p in changed if p not in present]
        what = "is missing" if len(missing) == len(changed) else "does not match its signed hash"
        raise SignatureError(
            f"refusing to start: {folder / changed[0]} {what}"
            + (f" (and {len(changed) - 1} more)" if len(changed) > 1 else "")
            + f"; nothing was loaded. {_FIX}."
        )
    extra = sorted(set(present) - set(listed))
    if extra:
        raise SignatureError(
            f"refusing to start: {folder / extra[0]} is not part of the signed export"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            + f"; remove it, or {_FIX}."
        )
