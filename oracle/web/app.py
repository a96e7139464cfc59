"""The FastAPI app: JSON API under /api/v1 and the pages from oracle/web/static/ (no CDN)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from oracle.web.errors import ApiError, api_error_handler, validation_error_handler
from oracle.web.state import WebState

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(state: WebState, static_dir: Path = STATIC_DIR) -> FastAPI:
    from oracle.web import api_accounts, api_market, api_network, api_rentals, api_tx

    app = FastAPI(title="gpurent web", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json",
                  redoc_url=None)
    app.state.web = state
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for module in (api_market, api_rentals, api_accounts, api_network, api_tx):
        app.include_router(module.router)

    @app.middleware("http")
    async def server_timing(request: Request, call_next: Any) -> Any:
        """``Server-Timing: app;dur=<ms>``: the server's own time per request (the benchmark reads it)."""
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "index": state.index_status()})

    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            page = static_dir / "index.html"
            if not page.is_file():
                raise ApiError(404, "no page yet (oracle/web/static/index.html)")
            return FileResponse(page)

    return app
