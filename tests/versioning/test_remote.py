"""``mlnb push`` / ``mlnb pull`` between clones, through a ``file://`` folder and through S3
(moto's server on 127.0.0.1): only missing objects travel, every object is checked against
its hash where it arrives, and a remote that cannot be used is one clear error."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from blake3 import blake3

from mlnb.config import reset_settings
from mlnb.exceptions import ConfigError, CorruptObjectError, RemoteError
from mlnb.tracking import version, versions
from mlnb.versioning import checkout, load, pull, push
from tests.conftest import run_mlnb as _mlnb

V1 = b"id,label\n1,cat\n2,dog\n3,bird\n"
V2 = b"id,label\n1,cat\n2,wolf\n3,bird\n"  # one line changed
IMAGES = {"a.txt": b"first image\n", "b.txt": b"second image\n", "nested/c.bin": b"\x00\x01\x02"}
PARAMS = {"lr": 0.01, "layers": [64, 32], "optimizer": {"name": "adam", "beta": 0.9}}
FRAME = pd.DataFrame(
    {"x": [1, 2, 3], "y": [0.5, 1.5, 2.5], "label": ["cat", "dog", "bird"]},
    index=pd.Index([10, 20, 30], name="row"),
)
NAMES = ["data/images", "data/train.csv", "frame", "params"]
N_OBJECTS = 8  # train.csv x2, the folder's manifest + 3 files, the frame, the config
N_RECORDS = 5  # train.csv@1, train.csv@2, data/images@1, frame@1, params@1

_AWS_KEYS = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "FSSPEC_S3",
    "FSSPEC_S3_ENDPOINT_URL",
)


# -- helpers -------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stored(folder: Path) -> dict[str, Path]:
    """Objects under an ``objects/`` folder (local store or file:// remote) by hash."""
    if not folder.is_dir():
        return {}
    return {
        p.parent.name + p.name: p
        for p in folder.glob("*/*")
        if p.is_file() and len(p.parent.name) == 2 and not p.name.startswith(".tmp-")
    }


def _objects(root: Path) -> set[str]:
    return set(_stored(root / ".mlnb" / "objects"))


def _assert_intact(root: Path) -> None:
    """Every object in the project's store hashes to its name; no temporary files left."""
    store = root / ".mlnb" / "objects"
    for digest, path in _stored(store).items():
        assert blake3(path.read_bytes()).hexdigest() == digest, path
    assert list(store.glob("*/.tmp-*")) == []


def _corrupt(path: Path, data: bytes = b"not what was stored\n") -> None:
    path.chmod(0o644)  # stored objects are read-only
    path.write_bytes(data)


def _use(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make ``root`` the current project for API calls in this process."""
    monkeypatch.chdir(root)
    reset_settings()


def _fresh_clone(path: Path) -> Path:
    """A second project, as a fresh clone of the repository has it: no objects, no records."""
    (path / ".mlnb").mkdir(parents=True)
    return path


def _listing(root: Path, name: str) -> str:
    done = _mlnb(root, "versions", name)
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Populated:
    root: Path
    objects: set[str]
    nbytes: int
    hashes: dict[str, list[str]]  # name -> version hashes, oldest first
    train_v1: str  # object of data/train.csv@1
    image_c: str  # object of data/images/nested/c.bin


def _populate(root: Path) -> Populated:
    """Version a CSV twice, a folder of 3 files, a DataFrame and a dict config in ``root``
    (the current project)."""
    train = root / "data" / "train.csv"
    train.parent.mkdir(parents=True)
    train.write_bytes(V1)
    first = version(train, run=False)
    train.write_bytes(V2)
    second = version(train, run=False)
    assert (first.name, first.number, second.number) == ("data/train.csv", 1, 2)
    assert first.hash == blake3(V1).hexdigest() and second.hash == blake3(V2).hexdigest()
    images = root / "data" / "images"
    for rel, data in IMAGES.items():
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        (images / rel).write_bytes(data)
    folder = version(images, run=False)
    assert (folder.name, folder.kind, folder.meta) == ("data/images", "folder", {"files": 3})
    frame = version(FRAME, "frame", run=False)
    params = version(PARAMS, "params", run=False)
    assert (frame.kind, params.kind) == ("dataframe", "config")
    stored = _stored(root / ".mlnb" / "objects")
    assert len(stored) == N_OBJECTS
    return Populated(
        root=root,
        objects=set(stored),
        nbytes=sum(p.stat().st_size for p in stored.values()),
        hashes={name: [r.hash for r in versions(name)] for name in NAMES},
        train_v1=first.hash,
        image_c=blake3(IMAGES["nested/c.bin"]).hexdigest(),
    )


@pytest.fixture
def populated(project: Path, monkeypatch: pytest.MonkeyPatch) -> Populated:
    monkeypatch.delenv("MLNB_REMOTE", raising=False)
    return _populate(project)


@pytest.fixture
def pushed(populated: Populated, tmp_path: Path) -> tuple[Populated, str]:
    """``populated`` pushed once to a ``file://`` remote; returns it and the remote's URL."""
    url = (tmp_path / "remote").as_uri()
    done = _mlnb(populated.root, "push", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pushed {N_OBJECTS} object(s)")
    return populated, url


# -- file:// -------------------------------------------------------------------------------
def test_push_then_pull_into_a_fresh_clone_restores_everything(
    populated: Populated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = populated.root
    remote = tmp_path / "remote"
    url = remote.as_uri()

    done = _mlnb(a, "push", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"pushed {N_OBJECTS} object(s) ({populated.nbytes:,} bytes) and {N_RECORDS} record(s) "
        f"to {url}; 0 already there\n"
    )
    remote_objects = _stored(remote / "objects")
    assert set(remote_objects) == populated.objects
    for digest, path in remote_objects.items():  # byte-identical to the local store
        assert path.read_bytes() == (a / ".mlnb" / "objects" / digest[:2] / digest[2:]).read_bytes()
    assert list((remote / "objects").glob("*/.tmp-*")) == []
    snapshots = sorted((remote / "records").glob("*.json"))
    assert len(snapshots) == 1
    doc = json.loads(snapshots[0].read_text())
    assert sorted((v["name"], v["hash"]) for v in doc["versions"]) == sorted(
        (name, h) for name, hashes in populated.hashes.items() for h in hashes
    )

    again = _mlnb(a, "push", url)  # only what is missing travels: nothing
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        f"pushed 0 object(s) (0 bytes) and 0 record(s) to {url}; {N_OBJECTS} already there\n"
    )
    assert set(_stored(remote / "objects")) == populated.objects

    b = _fresh_clone(tmp_path / "clone")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        rf"pulled {N_OBJECTS} object\(s\) \({populated.nbytes:,} bytes\) and \d+ record\(s\) "
        rf"from {re.escape(url)}; 0 already here\n",
        done.stdout,
    ), done.stdout
    assert _objects(b) == populated.objects
    _assert_intact(b)

    out = tmp_path / "restored" / "train-v1.csv"
    done = _mlnb(b, "checkout", "data/train.csv@1", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"restored data/train.csv@1 to {out}\n"
    assert out.read_bytes() == V1
    done = _mlnb(b, "checkout", "data/train.csv")  # latest, where it was versioned from
    assert done.returncode == 0, done.stderr
    assert (b / "data" / "train.csv").read_bytes() == V2

    done = _mlnb(b, "checkout", "data/images", "-o", str(tmp_path / "images"))
    assert done.returncode == 0, done.stderr
    restored = {
        p.relative_to(tmp_path / "images").as_posix(): p.read_bytes()
        for p in (tmp_path / "images").rglob("*")
        if p.is_file()
    }
    assert restored == IMAGES

    for name in NAMES:  # the same versions, numbers, hashes, sizes and dates on both sides
        listing = _listing(b, name)
        assert listing == _listing(a, name)
        hashes = re.findall(r"^@\d+\s+([0-9a-f]{16})\s", listing, flags=re.MULTILINE)
        assert hashes == [h[:16] for h in populated.hashes[name]]

    _use(monkeypatch, b)
    assert {name: [r.hash for r in versions(name)] for name in NAMES} == populated.hashes
    pd.testing.assert_frame_equal(load("frame"), FRAME)
    assert load("params") == PARAMS
    assert load("data/train.csv@1").read_bytes() == V1


def test_pull_fetches_only_what_is_missing(
    pushed: tuple[Populated, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populated, url = pushed
    a = populated.root
    b = _fresh_clone(tmp_path / "clone")

    first = _mlnb(b, "pull", url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(
        f"pulled {N_OBJECTS} object(s) ({populated.nbytes:,} bytes) and {N_RECORDS} record(s)"
    )
    assert first.stdout.endswith("; 0 already here\n")
    second = _mlnb(b, "pull", url)
    assert second.returncode == 0, second.stderr
    assert re.fullmatch(
        rf"pulled 0 object\(s\) \(0 bytes\) and \d+ record\(s\) from {re.escape(url)}; "
        rf"{N_OBJECTS} already here\n",
        second.stdout,
    ), second.stdout
    assert _objects(b) == populated.objects

    # A records a third version of the CSV and pushes: one object travels each way.
    v3 = V2 + b"4,fox\n"
    (a / "data" / "train.csv").write_bytes(v3)
    assert version(a / "data" / "train.csv", run=False).number == 3
    done = _mlnb(a, "push", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pushed 1 object(s) ({len(v3):,} bytes) and 1 record(s)")
    assert done.stdout.endswith(f"; {N_OBJECTS} already there\n")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pulled 1 object(s) ({len(v3):,} bytes)")
    assert done.stdout.endswith(f"; {N_OBJECTS} already here\n")
    assert _objects(b) == populated.objects | {blake3(v3).hexdigest()}
    done = _mlnb(b, "checkout", "data/train.csv@3", "-o", str(tmp_path / "v3.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v3.csv").read_bytes() == v3

    # --name: a third clone asks for the config only and gets just its one object.
    c = _fresh_clone(tmp_path / "clone-c")
    _use(monkeypatch, c)
    result = pull(url, names=["params"])
    assert (len(result.sent), result.skipped) == (1, 0)
    assert _objects(c) == {
        blake3(json.dumps(PARAMS, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    }
    assert load("params") == PARAMS


def test_pull_reports_each_version_once(pushed: tuple[Populated, str], tmp_path: Path) -> None:
    populated, url = pushed
    assert _mlnb(populated.root, "push", url).returncode == 0  # the same registry again
    b = _fresh_clone(tmp_path / "clone")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert f" and {N_RECORDS} record(s) from " in done.stdout, done.stdout


def test_a_corrupted_object_on_the_remote_is_refused(
    pushed: tuple[Populated, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populated, url = pushed
    remote = tmp_path / "remote"
    bad = populated.image_c
    good_bytes = IMAGES["nested/c.bin"]
    _corrupt(remote / "objects" / bad[:2] / bad[2:], b"\x00\x01\x03")  # same size, one bit

    b = _fresh_clone(tmp_path / "clone")
    early = _mlnb(b, "pull", url, "--name", "params")  # arrives before the failing pull
    assert early.returncode == 0, early.stderr
    assert early.stdout.startswith("pulled 1 object(s)")
    params_object = next(iter(_objects(b)))

    done = _mlnb(b, "pull", url)
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert done.stderr == (
        f"mlnb: error: object {bad[:12]} on {url} does not match its hash; it was not "
        "stored. Run `mlnb push --verify` from a clone that has a good copy to replace it.\n"
    )
    assert "Traceback" not in done.stderr
    arrived = _objects(b)
    assert bad not in arrived
    assert params_object in arrived  # what arrived intact stays
    assert arrived < populated.objects
    _assert_intact(b)

    _use(monkeypatch, b)  # the API raises the same error, and still stores nothing bad
    with pytest.raises(CorruptObjectError, match=rf"^object {bad[:12]} on {re.escape(url)} "):
        pull(url)
    assert bad not in _objects(b)
    arrived = _objects(b)
    _assert_intact(b)

    # Checking out what lacks its object says where to get it and writes nothing.
    out = tmp_path / "images-out"
    done = _mlnb(b, "checkout", "data/images", "-o", str(out))
    assert done.returncode == 4, done.stderr
    assert f"object {bad[:12]} is not in the store" in done.stderr
    assert "mlnb pull REMOTE" in done.stderr
    assert not out.exists()

    # Once the remote holds a good copy again, only what is still missing is fetched.
    _corrupt(remote / "objects" / bad[:2] / bad[2:], good_bytes)
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    missing = populated.objects - arrived
    assert done.stdout.startswith(f"pulled {len(missing)} object(s)")
    assert done.stdout.endswith(f"; {len(arrived)} already here\n")
    assert _objects(b) == populated.objects
    _assert_intact(b)


def test_an_object_missing_on_the_remote_is_named(
    pushed: tuple[Populated, str], tmp_path: Path
) -> None:
    populated, url = pushed
    gone = populated.train_v1
    path = tmp_path / "remote" / "objects" / gone[:2] / gone[2:]
    path.chmod(0o644)
    path.unlink()
    b = _fresh_clone(tmp_path / "clone")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 3, done.stderr
    assert done.stderr == (
        f"mlnb: error: object {gone[:12]} is recorded but missing on {url}; push it from a "
        "clone that has it.\n"
    )
    assert gone not in _objects(b)
    _assert_intact(b)

    done = _mlnb(populated.root, "push", url)  # as the message advises
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pushed 1 object(s) ({len(V1)} bytes)")
    assert done.stdout.endswith(f"; {N_OBJECTS - 1} already there\n")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert _objects(b) == populated.objects
    _assert_intact(b)
    done = _mlnb(b, "checkout", "data/train.csv@1", "-o", str(tmp_path / "v1.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v1.csv").read_bytes() == V1


def test_pushing_a_good_copy_repairs_a_corrupted_remote_object(
    pushed: tuple[Populated, str], tmp_path: Path
) -> None:
    populated, url = pushed
    bad = populated.train_v1
    _corrupt(tmp_path / "remote" / "objects" / bad[:2] / bad[2:], b"tampered\n")
    b = _fresh_clone(tmp_path / "clone")
    assert _mlnb(b, "pull", url).returncode == 5
    done = _mlnb(populated.root, "push", url)  # A still has a good copy
    assert done.returncode == 0, done.stderr
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert _objects(b) == populated.objects


def test_a_corrupted_local_object_is_refused_and_not_pushed(
    populated: Populated, tmp_path: Path
) -> None:
    a = populated.root
    bad = populated.train_v1
    _corrupt(a / ".mlnb" / "objects" / bad[:2] / bad[2:])

    out = tmp_path / "v1.csv"
    with pytest.raises(CorruptObjectError) as raised:
        checkout("data/train.csv@1", out)
    message = str(raised.value)
    assert message.startswith(f"object {bad[:12]} in {a / '.mlnb' / 'objects'} is corrupted")
    assert "`mlnb pull`" in message
    assert not out.exists()
    with pytest.raises(CorruptObjectError, match=rf"object {bad[:12]} .*`mlnb pull`"):
        load("data/train.csv@1")

    done = _mlnb(a, "checkout", "data/train.csv@1", "-o", str(out))
    assert done.returncode == 5
    assert f"object {bad[:12]} in " in done.stderr and "`mlnb pull`" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()
    assert (a / "data" / "train.csv").read_bytes() == V2  # the working copy is untouched

    remote = tmp_path / "remote"
    done = _mlnb(a, "push", remote.as_uri())
    assert done.returncode == 5, done.stdout
    assert done.stderr.startswith(f"mlnb: error: object {bad[:12]} in ")
    assert "Traceback" not in done.stderr
    assert bad not in _stored(remote / "objects")
    assert list(remote.glob("objects/*/.tmp-*")) == []
    with pytest.raises(CorruptObjectError, match=rf"object {bad[:12]} "):
        push(remote.as_uri())
    assert bad not in _stored(remote / "objects")
    assert not (remote / "records").exists()  # no records that point at a missing object


def test_an_unusable_remote_is_one_clear_error(
    populated: Populated, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = populated.root
    port = _free_port()  # nothing listens there
    for key in _AWS_KEYS:
        monkeypatch.delenv(key, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    b = _fresh_clone(tmp_path / "clone")
    for cwd, verb, doing in ((a, "push", "list objects"), (b, "pull", "list records")):
        started = time.monotonic()
        done = _mlnb(cwd, verb, "s3://mlnb-bucket/x", **env)
        assert time.monotonic() - started < 60
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert done.stdout == ""
        assert done.stderr.startswith(
            f"mlnb: error: could not {doing} on remote s3://mlnb-bucket/x: "
        )
        assert f"127.0.0.1:{port}" in done.stderr
        assert done.stderr.endswith(
            "Check the URL, the network and the credentials; nothing local was changed.\n"
        )
        assert "Traceback" not in done.stderr
    assert _objects(a) == populated.objects  # nothing local lost
    _assert_intact(a)
    assert {name: [r.hash for r in versions(name)] for name in NAMES} == populated.hashes
    assert _objects(b) == set()

    _use(monkeypatch, b)
    empty = tmp_path / "empty-remote"
    empty.mkdir()
    for url in (empty.as_uri(), (tmp_path / "no-such-folder").as_uri()):
        done = _mlnb(b, "pull", url)
        assert done.returncode == 3
        assert done.stderr == (
            f"mlnb: error: {url} has no mlnb records; push to it first (mlnb push {url}).\n"
        )
        with pytest.raises(RemoteError, match=r"has no mlnb records; push to it first"):
            pull(url)
    assert list(empty.iterdir()) == []
    assert not (tmp_path / "no-such-folder").exists()

    with pytest.raises(RemoteError, match=r"^cannot use remote 'nosuchproto://x': "):
        push("nosuchproto://x")
    done = _mlnb(a, "push")  # no remote given and none configured
    assert done.returncode == 2
    assert "no remote given; pass one" in done.stderr
    with pytest.raises(ConfigError, match=r"^no remote given"):
        pull()
    assert _objects(a) == populated.objects


# -- S3 (moto's server) --------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """An S3 API on 127.0.0.1 (moto's server in a thread), stopped after the module."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket; the environment (seen by ``mlnb`` subprocesses too) points s3fs at it."""
    import boto3

    for key in _AWS_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint,  # botocore reads it; s3fs goes through botocore
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"mlnb-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return bucket


def _s3_keys(bucket: str, prefix: str) -> dict[str, bytes]:
    import boto3

    client = boto3.client("s3")
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_push_and_pull_through_s3(populated: Populated, s3_bucket: str, tmp_path: Path) -> None:
    a = populated.root
    url = f"s3://{s3_bucket}/mlnb"
    done = _mlnb(a, "push", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"pushed {N_OBJECTS} object(s) ({populated.nbytes:,} bytes) and {N_RECORDS} record(s) "
        f"to {url}; 0 already there\n"
    )
    objects = _s3_keys(s3_bucket, "mlnb/objects/")
    assert {k.removeprefix("mlnb/objects/").replace("/", "") for k in objects} == populated.objects
    for key, data in objects.items():
        assert blake3(data).hexdigest() == key.removeprefix("mlnb/objects/").replace("/", "")
    records = _s3_keys(s3_bucket, "mlnb/records/")
    assert len(records) == 1
    assert len(json.loads(next(iter(records.values())))["versions"]) == N_RECORDS

    again = _mlnb(a, "push", url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == (
        f"pushed 0 object(s) (0 bytes) and 0 record(s) to {url}; {N_OBJECTS} already there\n"
    )
    assert set(_s3_keys(s3_bucket, "mlnb/objects/")) == set(objects)

    b = _fresh_clone(tmp_path / "clone")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"pulled {N_OBJECTS} object(s) ({populated.nbytes:,} bytes)")
    assert done.stdout.endswith(f"from {url}; 0 already here\n")
    assert _objects(b) == populated.objects
    _assert_intact(b)
    out = tmp_path / "v1.csv"
    done = _mlnb(b, "checkout", "data/train.csv@1", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == V1
    done = _mlnb(b, "checkout", "data/images", "-o", str(tmp_path / "images"))
    assert done.returncode == 0, done.stderr
    assert {
        p.relative_to(tmp_path / "images").as_posix(): p.read_bytes()
        for p in (tmp_path / "images").rglob("*")
        if p.is_file()
    } == IMAGES
    for name in NAMES:
        assert _listing(b, name) == _listing(a, name)

    done = _mlnb(b, "pull", url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pulled 0 object(s) (0 bytes)")
    assert done.stdout.endswith(f"; {N_OBJECTS} already here\n")


def test_a_corrupted_object_on_s3_is_refused(
    populated: Populated, s3_bucket: str, tmp_path: Path
) -> None:
    import boto3

    url = f"s3://{s3_bucket}/mlnb"
    assert _mlnb(populated.root, "push", url).returncode == 0
    bad = populated.train_v1
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key=f"mlnb/objects/{bad[:2]}/{bad[2:]}", Body=b"tampered\n"
    )
    b = _fresh_clone(tmp_path / "clone")
    done = _mlnb(b, "pull", url)
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert done.stderr == (
        f"mlnb: error: object {bad[:12]} on {url} does not match its hash; it was not "
        "stored. Run `mlnb push --verify` from a clone that has a good copy to replace it.\n"
    )
    assert bad not in _objects(b)
    _assert_intact(b)
