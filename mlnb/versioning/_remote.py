"""``mlnb push`` / ``mlnb pull``: copy objects and records to and from any fsspec URL
(``file://``, ``s3://``, ``gs://``…), sending only what the other side lacks and checking
every object's hash where it arrives.

Remote layout::

    <url>/objects/ab/cdef…          the objects, as in the local store
    <url>/records/<time>-<id>.json  the registry (versions and run edges) at each push
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blake3 import blake3

from mlnb._disk import disk_full_error, is_disk_full
from mlnb.exceptions import ConfigError, CorruptObjectError, RemoteError
from mlnb.versioning._core import Project
from mlnb.versioning._hashing import CHUNK

__all__ = ["TransferResult", "pull", "push"]


@dataclass
class TransferResult:
    remote: str
    sent: list[str] = field(default_factory=list)  # object hashes copied
    skipped: int = 0  # already there
    records: int = 0
    bytes: int = 0


def _open(url: str | None, project: Project) -> tuple[Any, str, str]:
    url = url or project.settings.remote
    if not url:
        raise ConfigError(
            "no remote given; pass one (mlnb push file:///path/to/remote) or set remote in "
            "[tool.mlnb] / MLNB_REMOTE."
        )
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise RemoteError(
            f"remote {url!r} needs the package {exc.name!r}; install it (for s3:// that is "
            "`pip install s3fs`, for gs:// `pip install gcsfs`)."
        ) from exc
    except (ValueError, OSError) as exc:
        raise RemoteError(f"cannot use remote {url!r}: {exc}") from exc
    return fs, root.rstrip("/"), url


def _remote_call(url: str, doing: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return func(*args, **kwargs)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RuntimeError, TimeoutError) as exc:
        raise RemoteError(
            f"could not {doing} on remote {url}: {exc}. Check the URL, the network and the "
            "credentials; nothing local was changed."
        ) from exc
    except Exception as exc:  # botocore and friends raise their own types
        if type(exc).__module__.split(".")[0] in {"botocore", "aiobotocore", "s3fs", "gcsfs"}:
            raise RemoteError(
                f"could not {doing} on remote {url}: {exc}. Check the URL, the network and "
                "the credentials; nothing local was changed."
            ) from exc
        raise


def _remote_objects(fs: Any, root: str, url: str) -> dict[str, int | None]:
    """Objects on the remote and their sizes."""
    base = f"{root}/objects"
    try:
        found = _remote_call(url, "list objects", fs.find, base, detail=True)
    except FileNotFoundError:
        return {}
    out: dict[str, int | None] = {}
    for path, info in found.items():
        parts = str(path).rstrip("/").split("/")
        if len(parts) >= 2 and len(parts[-2]) == 2 and not parts[-1].startswith(".tmp-"):
            out[parts[-2] + parts[-1]] = info.get("size")
    return out


def _remote_records(fs: Any, root: str, url: str) -> list[dict[str, Any]]:
    try:
        paths = sorted(_remote_call(url, "list records", fs.ls, f"{root}/records", detail=False))
    except FileNotFoundError:
        return []
    return [json.loads(_remote_call(url, "read records", fs.cat_file, path)) for path in paths]


def _wanted(project: Project, names: Iterable[str] | None) -> list[str]:
    """Objects of the selected names' versions (all names by default), trees expanded."""
    selected = set(names) if names else None
    out: list[str] = []
    for record in project.registry.all():
        if selected is not None and record.name not in selected:
            continue
        out.append(record.object)
        if record.kind in {"folder", "model"} and project.store.has(record.object):
            out.extend(project.store.children(record.object))
    return list(dict.fromkeys(out))


def push(
    url: str | None = None, names: Iterable[str] | None = None, verify: bool = False
) -> TransferResult:
    """Copy missing objects and new records to the remote. An object already there is sent
    again when its size differs (or, with ``verify``, its content does not hash right)."""
    project = Project.current()
    fs, root, url = _open(url, project)
    result = TransferResult(remote=url)
    present = _remote_objects(fs, root, url)
    for digest in _wanted(project, names):
        local = project.store.verify(digest)  # never spread a corrupted object
        if digest in present:
            remote_path = f"{root}/objects/{digest[:2]}/{digest[2:]}"
            same_size = present[digest] in (None, local.stat().st_size)
            if same_size and (not verify or _hash_remote(fs, remote_path, url) == digest):
                result.skipped += 1
                continue
        target = f"{root}/objects/{digest[:2]}/{digest[2:]}"
        tmp = f"{root}/objects/{digest[:2]}/.tmp-{uuid.uuid4().hex}"
        _remote_call(
            url, "create a folder", fs.makedirs, f"{root}/objects/{digest[:2]}", exist_ok=True
        )
        _remote_call(url, f"upload object {digest[:12]}", fs.put_file, str(local), tmp)
        if _hash_remote(fs, tmp, url) != digest:
            _remote_call(url, "remove a bad upload", fs.rm, tmp)
            raise RemoteError(
                f"object {digest[:12]} arrived damaged on {url}; nothing was recorded for "
                "it there. Push again."
            )
        _remote_call(url, f"store object {digest[:12]}", fs.mv, tmp, target)
        result.sent.append(digest)
        result.bytes += local.stat().st_size
    # Records: only what the remote does not have yet, so it does not grow on every push.
    known_versions: set[tuple[str, str]] = set()
    known_edges: set[tuple[str, str, str, str]] = set()
    for doc in _remote_records(fs, root, url):
        known_versions.update((v["name"], v["hash"]) for v in doc.get("versions", []))
        known_edges.update(
            (e["run_id"], e["name"], e["hash"], e["role"]) for e in doc.get("edges", [])
        )
    versions = [
        r.to_json() for r in project.registry.all() if (r.name, r.hash) not in known_versions
    ]
    edges = [
        e.__dict__
        for e in project.registry.edges()
        if (e.run_id, e.name, e.hash, e.role) not in known_edges
    ]
    result.records = len(versions)
    if versions or edges:
        doc = {"pushed_at": time.time(), "versions": versions, "edges": edges}
        _remote_call(url, "create a folder", fs.makedirs, f"{root}/records", exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.json"
        _remote_call(
            url, "write records", fs.pipe_file, f"{root}/records/{name}", json.dumps(doc).encode()
        )
    return result


def _hash_remote(fs: Any, path: str, url: str) -> str:
    hasher = blake3()
    with _remote_call(url, "read back an upload", fs.open, path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def pull(url: str | None = None, names: Iterable[str] | None = None) -> TransferResult:
    """Merge the remote's records into the local registry and fetch missing objects,
    verifying each one's hash before it enters the store."""
    project = Project.current()
    fs, root, url = _open(url, project)
    result = TransferResult(remote=url)
    docs = _remote_records(fs, root, url)
    if not docs:
        raise RemoteError(f"{url} has no mlnb records; push to it first (mlnb push {url}).")
    project.settings.home.mkdir(parents=True, exist_ok=True)
    before = {(r.name, r.hash) for r in project.registry.all()}
    for doc in docs:
        for version in doc.get("versions", []):
            project.registry.import_record(version)
        for edge in doc.get("edges", []):
            project.registry.import_edge(edge)
    result.records = len({(r.name, r.hash) for r in project.registry.all()} - before)
    store = project.store
    selected = set(names) if names else None
    records = [r for r in project.registry.all() if selected is None or r.name in selected]
    queue = [r.object for r in records]
    trees = {r.object for r in records if r.kind in {"folder", "model"}}
    while queue:
        digest = queue.pop(0)
        if not store.has(digest):
            _fetch(fs, root, url, project, digest)
            result.sent.append(digest)
            result.bytes += store.size(digest)
        else:
            result.skipped += 1
        if digest in trees:
            queue.extend(c for c in store.children(digest) if c not in queue)
    return result


def _fetch(fs: Any, root: str, url: str, project: Project, digest: str) -> None:
    store = project.store
    source = f"{root}/objects/{digest[:2]}/{digest[2:]}"
    folder = store.folder / digest[:2]
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    try:
        _remote_call(url, f"download object {digest[:12]}", fs.get_file, source, str(tmp))
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise RemoteError(
            f"object {digest[:12]} is recorded but missing on {url}; push it from a clone "
            "that has it."
        ) from None
    except RemoteError as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):  # the local disk, not the remote
            raise disk_full_error(store.folder, None, f"to fetch object {digest[:12]}") from exc
        raise
    try:
        stored = store.put_file(Path(tmp), expected=digest)
    except CorruptObjectError:
        raise CorruptObjectError(
            f"object {digest[:12]} on {url} does not match its hash; it was not stored. "
            "Run `mlnb push --verify` from a clone that has a good copy to replace it."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    assert stored == digest
