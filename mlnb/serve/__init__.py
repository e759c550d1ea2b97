"""The runtime of an exported service: ``mlnb serve DIR``, or ``create_app(DIR)`` for any
ASGI server. Importable without Jupyter: an exported service needs only ``mlnb[serve]``."""

from __future__ import annotations

import logging

from mlnb.serve._app import ServeSettings, create_app
from mlnb.serve._service import METADATA_FILE, Service, ServiceError, load_service

__all__ = [
    "METADATA_FILE",
    "ServeSettings",
    "Service",
    "ServiceError",
    "create_app",
    "load_service",
    "serve",
]

log = logging.getLogger("mlnb.serve")


def serve(
    folder: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    *,
    timeout_header_read: float | None = None,
    timeout_keep_alive: float | None = None,
    limit_concurrency: int | None = None,
    http: str = "auto",
) -> None:
    """Run the service with uvicorn (binds 127.0.0.1 unless told otherwise).

    Each worker closes a connection whose request headers have not come complete within
    ``timeout_header_read`` seconds and an idle kept-alive one after ``timeout_keep_alive``
    seconds, and answers 503 with ``Retry-After`` past ``limit_concurrency`` connections;
    ``None`` takes ``MLNB_TIMEOUT_HEADER_READ``, ``MLNB_TIMEOUT_KEEP_ALIVE`` and
    ``MLNB_LIMIT_CONCURRENCY``, else 10 s, 5 s and a limit below the open-files limit
    (raised to its hard limit first). See ``mlnb.serve._server``."""
    import os

    import uvicorn

    from mlnb.serve._app import configure_logging
    from mlnb.serve._cors import cors_origins
    from mlnb.serve._env import env_int
    from mlnb.serve._server import (
        ConnectionSettings,
        http_protocol,
        raise_open_files_limit,
        reserved_files,
    )

    protocol = http_protocol(http)
    cors_origins()  # a bad MLNB_CORS_ORIGINS fails here, not in every worker
    open_files = raise_open_files_limit()
    limits = ConnectionSettings.resolve(timeout_header_read, timeout_keep_alive, limit_concurrency)
    os.environ["MLNB_SERVICE_DIR"] = os.path.abspath(folder)
    os.environ["MLNB_TIMEOUT_HEADER_READ"] = repr(limits.timeout_header_read)  # for workers
    if os.environ.get("MLNB_AUDIT", "").strip().lower() not in {"0", "false", "no", "off"}:
        from mlnb.serve._setup import audit_sync_from_env

        audit_sync_from_env()  # a bad MLNB_AUDIT_SYNC: one line naming the allowed values
        env_int("MLNB_AUDIT_MAX_BYTES", 1)
    ServeSettings.from_env()  # a bad MLNB_MAX_BODY_BYTES or MLNB_MAX_BATCH_ROWS: one line
    load_service(folder)  # fail here, with the reason, rather than in every worker
    configure_logging(os.environ.get("MLNB_LOG_LEVEL", "INFO"))
    if limits.limit_concurrency > open_files - reserved_files(open_files):
        log.warning(
            "limit_concurrency %d leaves fewer than %d of the %d open files a worker may "
            "have for the service itself: clients past that are refused by the kernel "
            "(Too many open files), not with a 503",
            limits.limit_concurrency,
            reserved_files(open_files),
            open_files,
        )
    uvicorn.run(
        "mlnb.serve._app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        server_header=False,
        http=protocol,
        timeout_keep_alive=limits.timeout_keep_alive,  # type: ignore[arg-type]
        limit_concurrency=limits.limit_concurrency,
    )
