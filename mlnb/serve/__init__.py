"""The runtime of an exported service: ``mlnb serve DIR``, or ``create_app(DIR)`` for any
ASGI server. Importable without Jupyter: an exported service needs only ``mlnb[serve]``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlnb._lazy import lazy_names
from mlnb.serve._app import create_app
from mlnb.serve._service import (
    METADATA_FILE,
    Service,
    ServiceError,
    collect_endpoints,
    load_service,
)
from mlnb.serve._settings import ServeSettings

if TYPE_CHECKING:
    from mlnb.serve._batching import to_list
    from mlnb.serve._pickles import check_pickle_policy
    from mlnb.serve._routing import fetch_model, pinned_record
    from mlnb.serve._runners import frame_runner, typed_runner
    from mlnb.serve._schemas import dataframe_schema_from_example, example_records, shape_of
    from mlnb.serve._server import (
        DEFAULT_TIMEOUT_HEADER_READ,
        DEFAULT_TIMEOUT_KEEP_ALIVE,
        HTTP_CHOICES,
        MAX_DEFAULT_LIMIT,
    )
    from mlnb.serve._signing import sign_manifest, signing_key

__all__ = [
    "DEFAULT_TIMEOUT_HEADER_READ",
    "DEFAULT_TIMEOUT_KEEP_ALIVE",
    "HTTP_CHOICES",
    "MAX_DEFAULT_LIMIT",
    "METADATA_FILE",
    "ServeSettings",
    "Service",
    "ServiceError",
    "check_pickle_policy",
    "collect_endpoints",
    "create_app",
    "dataframe_schema_from_example",
    "example_records",
    "fetch_model",
    "frame_runner",
    "load_service",
    "pinned_record",
    "serve",
    "shape_of",
    "sign_manifest",
    "signing_key",
    "to_list",
    "typed_runner",
]

# What `mlnb export` builds a service with, loaded when it asks.
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "to_list": "._batching",
        "check_pickle_policy": "._pickles",
        "fetch_model": "._routing",
        "pinned_record": "._routing",
        "frame_runner": "._runners",
        "typed_runner": "._runners",
        "dataframe_schema_from_example": "._schemas",
        "example_records": "._schemas",
        "shape_of": "._schemas",
        "DEFAULT_TIMEOUT_HEADER_READ": "._server",
        "DEFAULT_TIMEOUT_KEEP_ALIVE": "._server",
        "HTTP_CHOICES": "._server",
        "MAX_DEFAULT_LIMIT": "._server",
        "sign_manifest": "._signing",
        "signing_key": "._signing",
    },
)

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
    from mlnb.serve._server import (
        ConnectionSettings,
        http_protocol,
        raise_open_files_limit,
        reserved_files,
    )

    protocol = http_protocol(http)
    # every knob read once, here: a bad value stops `mlnb serve` with one line naming it,
    # not every worker
    settings = ServeSettings.from_env()
    open_files = raise_open_files_limit()
    limits = ConnectionSettings.resolve(
        timeout_header_read, timeout_keep_alive, limit_concurrency, settings
    )
    os.environ["MLNB_SERVICE_DIR"] = os.path.abspath(folder)
    os.environ["MLNB_TIMEOUT_HEADER_READ"] = repr(limits.timeout_header_read)  # for workers
    load_service(folder, signing_key=settings.signing_key)  # fail here, not in every worker
    configure_logging(settings.log_level)
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
