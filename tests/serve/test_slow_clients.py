"""Slow and hostile clients against real `mlnb serve` processes on 127.0.0.1: slowloris
connections are closed after the header-read timeout while a normal client keeps getting
answers; past the connection limit a 503 with Retry-After; no cross-site browser call gets
through (no CORS allow headers, text/plain and form posts refused)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from mlnb.exceptions import MlnbError
from tests.serve.conftest import app_client
from tests.serving import RunningService, code, project_at, running_service, write_notebook

HOST = "127.0.0.1"
SLOW = 1000  # slowloris connections (the default hard limit of open files here is 20,000)
KEPT_ALIVE = 20  # of which this many send a whole request first, then dribble the next
SILENT = 20  # and this many send nothing at all
HEADER_TIMEOUT = 8.0  # seconds: a wide window for the normal client's answers
DEADLINE = 45.0  # for every slow connection to be closed (normally ~HEADER_TIMEOUT)
FOREIGN = "https://evil.example"

PREDICT = code(
    'def predict(x: float) -> float:\n    """Twice x."""\n    return 2 * x',
    "mlnb:export",
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from mlnb.export import export_notebook

    base = tmp_path_factory.mktemp("slow")
    with project_at(base / "project") as root:
        notebook = write_notebook(root / "double.ipynb", PREDICT)
        export_notebook(notebook, root / "svc", verify=False)
        yield root / "svc"


@pytest.fixture(scope="module", autouse=True)
def raised_open_files() -> None:
    """This process holds SLOW connections: its soft open-files limit goes up to the hard
    one, as ``mlnb serve`` does for itself."""
    from mlnb.serve._server import raise_open_files_limit

    available = raise_open_files_limit()
    if available < SLOW + 300:
        pytest.fail(
            f"the open-files limit here ({available}, `ulimit -Hn`) is below the {SLOW + 300} "
            "this test needs: raise the hard limit (e.g. `ulimit -Hn 4096` as root)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def service(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    log = tmp_path_factory.mktemp("slow-log") / "serve.log"
    with running_service(
        folder, log, "--timeout-header-read", str(HEADER_TIMEOUT), MLNB_AUDIT="off"
    ) as running:
        yield running


def _port(service: RunningService) -> int:
    return int(service.url.rsplit(":", 1)[1])


@dataclass
class Slow:
    opened: float
    writer: asyncio.StreamWriter
    silent: bool
    closed: float | None = None
    answer: bytes = b""


@dataclass
class Normal:
    statuses: list[int] = field(default_factory=list)
    answered_while_all_slow_open: int = 0
    errors: list[str] = field(default_factory=list)


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


def _read_sync(sock: socket.socket) -> bytes:
    """One whole response (headers and a body of content-length) from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or pytest.fail(f"closed after {data!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096) or pytest.fail(f"closed after {data + body!r}")
    return head + b"\r\n\r\n" + body


async def _slowloris(port: int, started: threading.Event, slow: list[Slow]) -> None:
    """Open SLOW connections that send part of a request and then one header line every
    half second; return once the server has closed every one (or at DEADLINE)."""

    async def watch(one: Slow, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            one.answer += await reader.read()  # until the server closes
        one.closed = time.monotonic()

    watchers = []
    for i in range(SLOW):
        opened = time.monotonic()
        reader, writer = await asyncio.open_connection(HOST, port)
        if i < KEPT_ALIVE:  # one whole request; the next one then dribbles
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b" 200 " in (await _read_response(reader)).split(b"\r\n", 1)[0]
            opened = time.monotonic()
        one = Slow(opened, writer, silent=i >= SLOW - SILENT)
        if not one.silent:
            writer.write(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        slow.append(one)
        watchers.append(asyncio.ensure_future(watch(one, reader)))
    started.set()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and any(s.closed is None for s in slow):
        for one in slow:
            if one.closed is None and not one.silent and not one.writer.is_closing():
                with contextlib.suppress(ConnectionError):
                    one.writer.write(b"X-Dribble: 1\r\n")
        await asyncio.sleep(0.5)
    for one in slow:
        one.writer.close()
    await asyncio.gather(*watchers, return_exceptions=True)


def _normal_client(service: RunningService, slow: list[Slow], done: threading.Event) -> Normal:
    normal = Normal()
    with httpx.Client(base_url=service.url, timeout=30) as http:
        while not done.is_set():
            try:
                answer = http.post("/predict", json={"x": 2.0})
            except httpx.HTTPError as exc:
                normal.errors.append(repr(exc))
                continue
            normal.statuses.append(answer.status_code)
            if answer.status_code == 200 and all(s.closed is None for s in slow):
                normal.answered_while_all_slow_open += 1
            time.sleep(0.05)
    return normal


def test_slowloris_connections_are_closed_while_normal_clients_get_answers(
    service: RunningService,
) -> None:
    slow: list[Slow] = []
    started, done = threading.Event(), threading.Event()
    result: list[Normal] = []

    def drive() -> None:
        started.wait(120)
        result.append(_normal_client(service, slow, done))

    thread = threading.Thread(target=drive)
    thread.start()
    try:
        asyncio.run(_slowloris(_port(service), started, slow))
    finally:
        started.set()
        done.set()
        thread.join(60)
    assert len(slow) == SLOW
    still_open = [s for s in slow if s.closed is None]
    assert not still_open, f"{len(still_open)} of {SLOW} slow connections never closed"
    # none closed before its header-read timeout (a lower bound holds on any machine)
    lived = [s.closed - s.opened for s in slow if s.closed is not None]
    assert min(lived) >= HEADER_TIMEOUT * 0.95
    # the ones that had sent part of a request were told why; the silent ones just closed
    told = {s.answer[:40] for s in slow if not s.silent}
    assert all(s.answer.startswith(b"HTTP/1.1 408 ") for s in slow if not s.silent), told
    assert all(s.answer == b"" for s in slow if s.silent)
    (normal,) = result
    assert normal.errors == []
    assert normal.statuses and set(normal.statuses) == {200}
    assert normal.answered_while_all_slow_open >= 1
    with service.client() as http:  # and the service is still fine afterwards
        assert http.post("/predict", json={"x": 1.5}).json() == 3.0


def test_headers_past_64_kib_get_a_431(service: RunningService) -> None:
    with socket.create_connection((HOST, _port(service)), timeout=DEADLINE) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        with contextlib.suppress(ConnectionError):  # the server may close while we send
            for _ in range(100):
                sock.sendall(b"X-Big: " + b"a" * 1000 + b"\r\n")
        assert _read_sync(sock).startswith(b"HTTP/1.1 431 ")
    with service.client() as http:  # a large but acceptable request still passes
        answer = http.get("/healthz", headers={f"x-h{i}": "a" * 1000 for i in range(40)})
        assert answer.status_code == 200


def test_the_body_of_a_request_answered_early_is_not_read_as_the_next_headers(
    service: RunningService,
) -> None:
    """A 413 goes out before a 2 MiB body arrives; the client sends the body anyway, then its
    next request on the same connection: that request is answered, not met with a 431 (the
    body's bytes are the body, not headers) or a 408."""
    body = b"[" + b"1," * (1024 * 1024) + b"1]"
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection((HOST, _port(service)), timeout=DEADLINE) as sock:
        sock.sendall(head)
        first = _read_sync(sock)
        assert first.startswith(b"HTTP/1.1 413 "), first[:200]
        try:
            sock.sendall(body + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    break
        except ConnectionError:  # the server may close the connection after the 413 instead
            data = b""
    # either the next request is answered, or the connection was closed; never a stray 431
    assert data == b"" or data.startswith(b"HTTP/1.1 200 "), data[:200]


def test_past_the_connection_limit_a_503_with_retry_after_also_with_h11(
    folder: Path, tmp_path: Path
) -> None:
    """uvicorn's other parser (h11) gets the same guarantees: the connection limit's 503,
    and the header-read timeout on fresh and on kept-alive connections."""
    limit, timeout = 20, 6.0
    with running_service(
        folder,
        tmp_path / "serve.log",
        "--http", "h11",
        "--limit-concurrency", str(limit),
        "--timeout-header-read", str(timeout),
        MLNB_AUDIT="off",
    ) as running:  # fmt: skip
        port = _port(running)
        opened = time.monotonic()
        kept = socket.create_connection((HOST, port), timeout=DEADLINE)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_sync(kept).startswith(b"HTTP/1.1 200 ")
        kept.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request, never finished
        idle = [socket.create_connection((HOST, port), timeout=DEADLINE) for _ in range(limit - 1)]
        try:
            with running.client() as http:
                answer = http.post("/predict", json={"x": 1.0})
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "1"
            assert answer.headers["content-type"] == "application/json"
            assert "connection limit" in answer.json()["detail"]
            # the server closes them all after the header-read timeout (never before)
            assert kept.recv(4096).startswith(b"HTTP/1.1 408 ")
            assert all(sock.recv(1024) == b"" for sock in idle)
            assert time.monotonic() - opened >= timeout * 0.95
        finally:
            for sock in (kept, *idle):
                sock.close()
        deadline = time.monotonic() + 30
        while True:  # the slots are free again
            with running.client() as http:
                answer = http.post("/predict", json={"x": 1.0})
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text


def test_no_cross_site_browser_call_gets_through(service: RunningService) -> None:
    with service.client() as http:
        preflight = http.options(
            "/predict",
            headers={
                "Origin": FOREIGN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]
        # what a page can post without a preflight: text/plain, urlencoded and multipart forms
        for path in ("/predict", "/feedback"):
            for content_type, body in (
                ("text/plain", b'{"x": 1.0}'),
                ("application/x-www-form-urlencoded", b"x=1.0"),
                ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; '
                 b'name="x"\r\n\r\n1.0\r\n--b--\r\n'),
            ):  # fmt: skip
                answer = http.post(
                    path, content=body, headers={"Origin": FOREIGN, "Content-Type": content_type}
                )
                assert answer.status_code == 415, (path, content_type, answer.text)
                assert "access-control-allow-origin" not in answer.headers


def test_cors_only_for_the_origins_listed(folder: Path) -> None:
    allowed = "https://app.example"
    request = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    with app_client(folder, MLNB_CORS_ORIGINS=f"{allowed}, https://other.example") as client:
        ok = client._run(client.client.options("/predict", headers={"Origin": allowed, **request}))
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        foreign = client._run(
            client.client.options("/predict", headers={"Origin": FOREIGN, **request})
        )
        assert foreign.status_code == 403
        assert not [h for h in foreign.headers if h.lower().startswith("access-control-")]
        call = client.post("/predict", json={"x": 1.0}, headers={"Origin": allowed})
        assert call.status_code == 200
        assert call.headers["access-control-allow-origin"] == allowed
        assert (
            "access-control-allow-origin"
            not in client.post("/predict", json={"x": 1.0}, headers={"Origin": FOREIGN}).headers
        )


@pytest.mark.parametrize("value", ["*", "app.example", "https://app.example/path"])
def test_a_cors_origin_that_is_not_one_is_refused(folder: Path, value: str) -> None:
    from mlnb.serve import create_app

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLNB_CORS_ORIGINS", value)
        with pytest.raises(MlnbError, match=r"MLNB_CORS_ORIGINS: .* is not an origin; list"):
            create_app(folder)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"timeout_header_read": 0}, r"--timeout-header-read 0: a timeout must be more than 0"),
        ({"timeout_keep_alive": -1}, r"--timeout-keep-alive -1: a timeout must be more than 0"),
        ({"limit_concurrency": 0}, r"--limit-concurrency 0: give a whole number"),
    ],
)
def test_bad_limits_are_refused(given: dict[str, float], message: str) -> None:
    from mlnb.serve._server import ConnectionSettings

    with pytest.raises(MlnbError, match=message):
        ConnectionSettings.resolve(**given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("open_files", "limit"), [(20_000, 10_000), (4096, 3584), (1024, 768), (100, 50), (8, 4)]
)
def test_the_default_limit_stays_below_the_open_files_limit(open_files: int, limit: int) -> None:
    from mlnb.serve._server import default_limit, reserved_files

    assert default_limit(open_files) == limit
    assert default_limit(open_files) + reserved_files(open_files) <= open_files


def test_limits_from_flags_then_environment_then_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlnb.serve._server import ConnectionSettings, default_limit

    for name in ("MLNB_TIMEOUT_HEADER_READ", "MLNB_TIMEOUT_KEEP_ALIVE", "MLNB_LIMIT_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    assert ConnectionSettings.resolve() == ConnectionSettings(10.0, 5.0, default_limit())
    monkeypatch.setenv("MLNB_TIMEOUT_HEADER_READ", "2.5")
    monkeypatch.setenv("MLNB_LIMIT_CONCURRENCY", "50")
    assert ConnectionSettings.resolve() == ConnectionSettings(2.5, 5.0, 50)
    assert ConnectionSettings.resolve(4, 1, 7) == ConnectionSettings(4.0, 1.0, 7)


def test_a_request_past_the_running_limit_gets_the_same_503() -> None:
    """The second check, per request (the connection check is over HTTP above): more
    requests running in the worker than the limit (their clients may have gone) -> 503."""
    from mlnb.serve._server import _limit_tasks

    sent: list[dict[str, object]] = []
    reached: list[bool] = []

    async def app(scope: object, receive: object, send: object) -> None:
        reached.append(True)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http"}
    asyncio.run(_limit_tasks(app, {1, 2, 3}, 3, scope, receive, send))  # 3 running, limit 3
    assert reached == [True] and sent == []
    asyncio.run(_limit_tasks(app, {1, 2, 3, 4}, 3, scope, receive, send))
    assert reached == [True]
    start, body = sent
    assert start["status"] == 503
    assert (b"retry-after", b"1") in start["headers"]  # type: ignore[operator]
    assert b"connection limit" in body["body"]  # type: ignore[operator]
