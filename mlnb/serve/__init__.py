"""The runtime of an exported service: ``mlnb serve DIR``, or ``create_app(DIR)`` for any
ASGI server. Importable without Jupyter: an exported service needs only ``mlnb[serve]``."""

from __future__ import annotations

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


def serve(folder: str, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the service with uvicorn (binds 127.0.0.1 unless told otherwise)."""
    import os

    import uvicorn

    from mlnb.serve._app import configure_logging

    os.environ["MLNB_SERVICE_DIR"] = os.path.abspath(folder)
    load_service(folder)  # fail here, with the reason, rather than in every worker
    configure_logging(os.environ.get("MLNB_LOG_LEVEL", "INFO"))
    uvicorn.run(
        "mlnb.serve._app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=None,
        server_header=False,
    )
