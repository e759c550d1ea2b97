"""Cross-origin calls from web pages: none by default, an explicit allow-list otherwise.

With ``MLNB_CORS_ORIGINS`` unset the service sends no ``Access-Control-Allow-*`` header, so
a browser lets no other site's page read an answer or send a JSON body (that needs a
preflight, which gets no allow headers); the bodies a page can post without a preflight
(``text/plain``, forms) are refused with 415 before any handler. With
``MLNB_CORS_ORIGINS=https://a.example,https://b.example`` exactly those origins may call
it (GET, POST; the headers Content-Type, X-API-Key, Authorization, X-Request-ID). A
wildcard is refused: list the origins.
"""

from __future__ import annotations

import re
from typing import Any

from mlnb.serve._service import ServiceError

__all__ = ["add_cors", "cors_origins", "parse_origins"]

_ORIGIN = re.compile(r"^https?://[^/\s?#*]+$")


def cors_origins(raw: str | None = None) -> list[str]:
    """The origins of ``raw``, else of ``MLNB_CORS_ORIGINS`` (``ServeSettings``), checked."""
    if raw is None:
        from mlnb.serve._settings import ServeSettings

        return list(ServeSettings.from_env().cors_origins)
    return parse_origins(raw)


def parse_origins(raw: str) -> list[str]:
    """The origins of a comma-separated list; one that is not an origin is a ServiceError."""
    origins = [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ServiceError(
                f"MLNB_CORS_ORIGINS: {origin!r} is not an origin; list origins such as "
                "https://app.example.com (scheme, host and port only, no wildcard)"
            )
    return origins


def add_cors(app: Any, origins: list[str] | tuple[str, ...] | None = None) -> None:
    """Answer the allowed origins' preflights and calls (outermost, so a preflight, which
    carries no API key, is answered before the key is checked); nothing when none."""
    origins = cors_origins() if origins is None else origins
    if not origins:
        return
    app.add_middleware(
        _allow_list_cors(),
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "X-API-Key", "Authorization", "X-Request-ID"],
        expose_headers=["X-Request-ID"],
        max_age=600,
    )


def _allow_list_cors() -> Any:
    from fastapi.responses import JSONResponse
    from starlette.datastructures import Headers
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import Response

    class AllowListCORS(CORSMiddleware):
        """Starlette's, except that a preflight from an origin not on the list gets no
        ``Access-Control-Allow-*`` header at all (Starlette sends the allowed methods and
        headers to anyone)."""

        def preflight_response(self, request_headers: Headers) -> Response:
            origin = request_headers["origin"]
            if self.is_allowed_origin(origin):
                return super().preflight_response(request_headers)
            return JSONResponse(
                {
                    "detail": f"origin {origin[:100]} may not call this service; add it to "
                    "MLNB_CORS_ORIGINS to allow it",
                    "request_id": None,
                },
                status_code=403,
                headers={"vary": "Origin"},
            )

    return AllowListCORS
