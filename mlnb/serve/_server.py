"""What ``mlnb serve`` adds to uvicorn so slow or hostile clients cannot starve normal ones.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) and can answer 503 past
``limit_concurrency``, but it has no deadline for the request headers: a connection that
sends nothing, or one header byte now and then, is kept forever (and each such byte even
cancels the keep-alive timer). Enough of them exhaust the process's open files, and then
every normal client is refused (``Too many open files``). The HTTP protocol classes here
(``H11Protocol`` and ``HttpToolsProtocol`` with one mixin, so both of uvicorn's HTTP/1.1
parsers behave the same) guarantee, per worker process:

* **Header-read timeout** (``timeout_header_read``): a fresh connection that has not sent
  complete request headers within N seconds, and a kept-alive one whose next request has
  not come complete within N seconds of its first byte, is closed (a ``408`` first when part
  of a request arrived). Dribbling bytes does not extend the deadline.
* **Connection limit** (``limit_concurrency``, as uvicorn's, counted per worker): a
  connection past the limit is answered at once, without waiting for its request, with a
  ``503`` carrying ``Retry-After`` and a JSON body like the service's other errors, then
  shut for writing and closed once the client has closed (or after a short linger). The
  same answer goes to a request that would push the number of running requests past the
  limit. uvicorn's own 503 (plain text, no ``Retry-After``) is never used.
* **Header size**: request headers over 64 KiB get a ``431`` and the connection is closed
  (httptools has no limit of its own; h11 stops at 16 KiB with a 400).
* **Keep-alive timeout** is uvicorn's (``timeout_keep_alive``).

:func:`raise_open_files_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard limit, and
:func:`default_limit` keeps the connection limit below it with room for the service's own
files and for refused connections still lingering, so a worker never hits ``EMFILE``.

Settings come from the environment (``mlnb serve`` sets them from its flags):
``MLNB_TIMEOUT_HEADER_READ`` (seconds, default 10), ``MLNB_TIMEOUT_KEEP_ALIVE`` (5),
``MLNB_LIMIT_CONCURRENCY`` (default :func:`default_limit`). Under another ASGI server,
``create_app`` gets none of this: use that server's own limits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = H11Protocol  # type: ignore[assignment,misc]
    HAVE_HTTPTOOLS = False

from mlnb.serve._service import ServiceError
from mlnb.serve._settings import (
    DEFAULT_TIMEOUT_HEADER_READ,
    DEFAULT_TIMEOUT_KEEP_ALIVE,
    ServeSettings,
)

__all__ = [
    "DEFAULT_TIMEOUT_HEADER_READ",  # defined with the other knobs in _settings
    "DEFAULT_TIMEOUT_KEEP_ALIVE",
    "ConnectionSettings",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "default_limit",
    "http_protocol",
    "raise_open_files_limit",
]

log = logging.getLogger("mlnb.serve")

#: at most this many connections per worker by default, fewer when open files are scarcer
MAX_DEFAULT_LIMIT = 10_000
#: seconds a client is told to wait (Retry-After) when the service is full
RETRY_AFTER = 1
#: a refused connection is closed this long after its 503 if the client keeps it open
REFUSED_LINGER = 2.0
#: request headers larger than this are answered 431 (httptools has no limit of its own)
MAX_HEADER_BYTES = 64 * 1024
HTTP_CHOICES = ("auto", "h11", "httptools")


def raise_open_files_limit() -> int:
    """Lift the soft open-files limit of this process (and so of the workers it starts) to
    the hard limit; returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if target == resource.RLIM_INFINITY:
        try:  # Linux refuses more than fs.nr_open
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1024 * 1024
    if soft == resource.RLIM_INFINITY or soft >= target:
        return int(soft if soft != resource.RLIM_INFINITY else target)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        return int(soft)
    return int(target)


def reserved_files(open_files: int) -> int:
    """File descriptors kept free of client connections: the service's own files (model,
    libraries, logs, audit: 14 open in an idle worker here, with audit off), refused
    connections lingering for their 503 (at most half of these) and connections
    accepted past the limit in one burst (up to uvicorn's backlog, 2048) before their reset."""
    return max(min(256, open_files // 2), open_files // 8)


def default_limit(open_files: int | None = None) -> int:
    """The connection limit of a worker when none is set: below its open-files limit by
    :func:`reserved_files`, and at most ``MAX_DEFAULT_LIMIT``."""
    if open_files is None:
        import resource

        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if open_files == resource.RLIM_INFINITY:
            open_files = MAX_DEFAULT_LIMIT * 2
    return max(1, min(MAX_DEFAULT_LIMIT, open_files - reserved_files(open_files)))


@dataclass(frozen=True)
class ConnectionSettings:
    """What a worker allows its clients (see the module's docstring)."""

    timeout_header_read: float
    timeout_keep_alive: float
    limit_concurrency: int

    @classmethod
    def resolve(
        cls,
        timeout_header_read: float | None = None,
        timeout_keep_alive: float | None = None,
        limit_concurrency: int | None = None,
        settings: ServeSettings | None = None,
    ) -> ConnectionSettings:
        """The values given, else ``settings`` (``MLNB_TIMEOUT_HEADER_READ``,
        ``MLNB_TIMEOUT_KEEP_ALIVE`` and ``MLNB_LIMIT_CONCURRENCY``, read now when not
        given), else the defaults; a value out of range is a :class:`ServiceError` naming
        it."""
        settings = settings or ServeSettings.from_env()
        header = _pick(timeout_header_read, settings.timeout_header_read)
        keep_alive = _pick(timeout_keep_alive, settings.timeout_keep_alive)
        limit = _pick(limit_concurrency, settings.limit_concurrency)
        if header <= 0 or keep_alive <= 0:
            name, value = (
                ("timeout-header-read", header)
                if header <= 0
                else ("timeout-keep-alive", keep_alive)
            )
            raise ServiceError(f"--{name} {value:g}: a timeout must be more than 0 seconds")
        if limit is not None and (limit < 1 or limit != int(limit)):
            raise ServiceError(
                f"--limit-concurrency {limit:g}: give a whole number of connections, at least 1"
            )
        return cls(header, keep_alive, int(limit) if limit is not None else default_limit())


def _pick(given: float | None, setting: float | None) -> Any:
    return float(given) if given is not None else setting


@functools.lru_cache(maxsize=1)
def _max_lingering() -> int:
    """Refused connections of this process that may linger for their 503 at once (half the
    reserve of open files); past that, a refused connection is reset without an answer."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return max(16, reserved_files(soft if soft != resource.RLIM_INFINITY else 65536) // 2)


@functools.lru_cache(maxsize=1)
def _header_timeout_setting() -> float:
    """The header-read timeout of this process (``mlnb serve`` puts it in the environment
    its workers inherit)."""
    return ServeSettings.from_env().timeout_header_read


def _response(status: int, reason: bytes, detail: str, *extra: bytes) -> bytes:
    body = orjson.dumps({"detail": detail, "request_id": None})
    head = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


SERVICE_FULL = "the service is at its connection limit; retry after the time in Retry-After"
_FULL_503 = _response(503, b"Service Unavailable", SERVICE_FULL, b"retry-after: %d" % RETRY_AFTER)
_TOO_LARGE_431 = _response(
    431,
    b"Request Header Fields Too Large",
    "the request headers are larger than 64 KiB; send fewer or smaller headers",
)
_TIMEOUT_408 = _response(
    408, b"Request Timeout", "the request headers did not arrive in time; send them at once"
)


class _Guard(asyncio.Protocol):
    """The mixin (first in the MRO, before uvicorn's protocol class)."""

    # attributes of uvicorn's protocol classes used here
    transport: asyncio.Transport
    connections: set[Any]
    tasks: set[asyncio.Task[None]]
    cycle: Any
    loop: asyncio.AbstractEventLoop
    app: Any
    limit_concurrency: int | None
    _refused_lingering = 0  # per process: refused connections not closed yet

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's Config gives the keep-alive timeout and the limit (None: derived here)
        self._limit = self.limit_concurrency or default_limit()
        self._timeout_header_read = _header_timeout_setting()
        self.limit_concurrency = None  # uvicorn's own check (a plain-text 503) stays off
        self.app = functools.partial(_limit_tasks, self.app, self.tasks, self._limit)
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._lingering = False  # refused, answered, not closed yet
        self._draining = False  # answered 408 or 431: the rest of the input is dropped
        self._received = 0  # bytes of a request whose headers are not complete yet

    # -- connection limit ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limit:
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._refused = True
        if _Guard._refused_lingering >= _max_lingering():
            transport.abort()  # too many lingering already: no answer, no file held
            return
        _Guard._refused_lingering += 1
        self._lingering = True
        transport.write(_FULL_503)
        if transport.can_write_eof():
            transport.write_eof()  # the answer, then FIN; what the client sends is discarded
        self._header_timer = self.loop.call_later(REFUSED_LINGER, transport.close)

    # -- header-read timeout ------------------------------------------------------------
    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self._timeout_header_read, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _waiting_for_request(self) -> bool:
        """True between requests: the last one answered *and* its body read to the end (an
        early answer, a 413 or a 401, can go out while the body still arrives; those bytes
        are the body, not the next request's headers)."""
        cycle = self.cycle
        return cycle is None or (bool(cycle.response_complete) and not cycle.more_body)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._waiting_for_request():
            return
        if self._received:
            self._answer_and_close(_TIMEOUT_408)
        else:
            self.transport.close()

    def _answer_and_close(self, response: bytes) -> None:
        """Send ``response``, then FIN; read and drop what the client still sends until it
        closes (or ``REFUSED_LINGER``), so a reset does not destroy the answer."""
        self._draining = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._header_timer = self.loop.call_later(REFUSED_LINGER, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._draining:
            return
        waiting = self._waiting_for_request()
        if waiting:
            if self._header_timer is None:
                self._arm_header_timer()  # the first byte of a request, on a kept-alive one
            self._received += len(data)
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # the request's headers are complete
            self._cancel_header_timer()
            self._received = 0
        elif waiting and self._received > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._cancel_header_timer()  # httptools sets no limit of its own (h11: 16 KiB)
            self._answer_and_close(_TOO_LARGE_431)
        elif not waiting and self._header_timer is None and self._waiting_for_request():
            # the body of an early-answered request ended in this chunk, which may hold the
            # start of the next request: its header-read clock starts now
            self._arm_header_timer()

    def eof_received(self) -> None:
        if self._refused or self._draining:
            self.transport.close()  # the client has read its 503 and closed
            return
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._refused:
            if self._lingering:
                self._lingering = False
                _Guard._refused_lingering -= 1
            return
        super().connection_lost(exc)

    def shutdown(self) -> None:
        self._cancel_header_timer()
        super().shutdown()  # type: ignore[misc]


async def _limit_tasks(
    app: Any, tasks: set[Any], limit: int, scope: Any, receive: Any, send: Any
) -> None:
    """The app, unless more than ``limit`` requests run at once in this worker (the running
    one included): then the 503 of a full service."""
    if len(tasks) > limit and scope["type"] == "http":
        log.warning("request refused: %d requests running (limit %d)", len(tasks), limit)
        body = orjson.dumps({"detail": SERVICE_FULL, "request_id": None})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(RETRY_AFTER).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await app(scope, receive, send)


class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
    """uvicorn's httptools protocol with the guarantees of this module."""


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's h11 protocol with the guarantees of this module."""


def http_protocol(name: str = "auto") -> type[asyncio.Protocol]:
    """The guarded protocol class for uvicorn's ``--http`` choice (``auto``: httptools when
    installed, as uvicorn chooses)."""
    if name not in HTTP_CHOICES:
        raise ServiceError(f"--http {name}: choose one of {', '.join(HTTP_CHOICES)}")
    if name == "h11" or not HAVE_HTTPTOOLS:
        return GuardedH11Protocol
    return GuardedHttpToolsProtocol
