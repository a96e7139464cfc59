"""The daemon's HTTP endpoint for renters (FastAPI). Every ``/v1/rentals/...`` request must be
signed by that rental's renter (``oracle.provider.auth``); domain errors become HTTP statuses
only here.

    GET  /healthz                          liveness, GPU runtime, tracked rentals
    GET  /v1/identity                      the agent address and public key (to seal workloads to)
    PUT  /v1/rentals/{id}/workload         body: the sealed workload spec (checked against the commitment)
    GET  /v1/rentals/{id}/connection       connection details, sealed to the renter's key
    POST /v1/rentals/{id}/exec             {"cmd": [...], "workdir": "/"} -> exit code, stdout, stderr (base64)
    GET  /v1/rentals/{id}/logs?follow=1&tail=N   the container's output, streamed
    PUT  /v1/rentals/{id}/archive?path=DIR body: a tar extracted into DIR
    GET  /v1/rentals/{id}/archive?path=P   a tar of P
    WS   /v1/rentals/{id}/shell            an interactive shell on a TTY in the container (`rent ssh`)
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import asyncio

from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from oracle.protocol import RentalStatus
from oracle.provider import AuthError, ProviderError
from oracle.provider.auth import ReplayGuard, VerifiedRequest, verify_request
from oracle.provider.workload import seal

MAX_BODY_BYTES = 64 * 1024 * 1024
OPEN, ACTIVE, ENDED = RentalStatus.OPEN, RentalStatus.ACTIVE, RentalStatus.ENDED


def create_app(daemon: Any) -> FastAPI:
    app = FastAPI(title="gpurent provider daemon", docs_url=None, redoc_url=None)
    app.state.daemon = daemon
    replay = ReplayGuard()
    config = daemon.config

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return JSONResponse({"error": "unauthorized", "detail": str(exc)}, status_code=401)

    @app.exception_handler(ProviderError)
    async def _provider(_: Request, exc: ProviderError) -> JSONResponse:
        return JSONResponse({"error": "refused", "detail": str(exc)}, status_code=409)

    async def renter_request(request: Request | WebSocket, rental_id: int, *,
                             statuses: tuple[RentalStatus, ...]) -> tuple[VerifiedRequest, bytes]:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")  # before reading it
        body = await request.body() if isinstance(request, Request) else b""
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, "body too large")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        now = int(time.time())
        method = request.method if isinstance(request, Request) else "GET"
        verified = verify_request(dict(request.headers), config.chain_id, config.market_address, method,
                                  path, body, now)
        rental = await run_in_threadpool(daemon.rental, rental_id)
        if int(rental["status"]) == 0 or int(rental["renter"], 16) == 0:
            raise HTTPException(404, f"no rental {rental_id}")
        if rental["renter"].lower() != verified.address.lower():
            raise HTTPException(403, f"{verified.address} is not the renter of rental {rental_id}")
        if rental["provider"].lower() != daemon.provider.lower():
            raise HTTPException(404, f"rental {rental_id} is not on this provider's offers")
        if int(rental["status"]) not in statuses:
            raise HTTPException(409, f"rental {rental_id} is {rental['statusName']}")
        replay.check(verified, now)
        return verified, body

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "gpu_runtime": daemon.runtime.gpus_enabled, "rentals": sorted(daemon.rentals),
                "provider": daemon.provider, "chain_id": config.chain_id, "market": config.market_address}

    @app.get("/v1/identity")
    def identity() -> dict[str, Any]:
        from oracle.provider.workload import address_of_public_key

        return {"agent": address_of_public_key(daemon.public_key), "public_key": "0x" + daemon.public_key.hex(),
                "provider": daemon.provider, "chain_id": config.chain_id, "market": config.market_address,
                "url": config.url}

    @app.put("/v1/rentals/{rental_id}/workload")
    async def put_workload(rental_id: int, request: Request) -> dict[str, Any]:
        _, body = await renter_request(request, rental_id, statuses=(OPEN,))
        spec = await run_in_threadpool(daemon.accept_workload, rental_id, body)
        return {"rental_id": rental_id, "accepted": True, "workload_hash": "0x" + spec.workload_hash().hex()}

    @app.get("/v1/rentals/{rental_id}/connection")
    async def connection(rental_id: int, request: Request) -> dict[str, Any]:
        verified, _ = await renter_request(request, rental_id, statuses=(OPEN, ACTIVE))
        tracked = daemon.rentals.get(rental_id)
        container = tracked.container if tracked is not None else None
        details = {
            "rental_id": rental_id, "endpoint": config.url, "ready": container is not None,
            "container": container.container_id if container else None,
            "gpus": list(container.gpu_uuids) if container else [],
            "network": config.docker.network,
            "shell": f"gpurent rent ssh {rental_id} --provider-url {config.url}",
            "ssh_key_installed": "/root/.ssh/authorized_keys",
        }
        sealed = seal(verified.public_key, json.dumps(details, sort_keys=True).encode())
        return {"rental_id": rental_id, "sealed": "0x" + sealed.hex()}

    @app.post("/v1/rentals/{rental_id}/exec")
    async def exec_(rental_id: int, request: Request) -> dict[str, Any]:
        _, body = await renter_request(request, rental_id, statuses=(ACTIVE,))
        try:
            data = json.loads(body or b"{}")
            cmd = [str(c) for c in data["cmd"]]
            if not cmd:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise HTTPException(422, 'body must be {"cmd": ["program", "arg", ...]}') from None
        code, out, err = await run_in_threadpool(daemon.runtime.exec, rental_id, cmd, data.get("workdir"))
        return {"exit_code": code, "stdout": base64.b64encode(out).decode(), "stderr": base64.b64encode(err).decode()}

    @app.get("/v1/rentals/{rental_id}/logs")
    async def logs(rental_id: int, request: Request, follow: bool = False, tail: int | None = None) -> StreamingResponse:
        await renter_request(request, rental_id, statuses=(ACTIVE, ENDED))
        stream = await run_in_threadpool(daemon.runtime.logs, rental_id, follow=follow, tail=tail)
        return StreamingResponse(stream, media_type="application/octet-stream")

    @app.put("/v1/rentals/{rental_id}/archive")
    async def put_archive(rental_id: int, request: Request, path: str) -> dict[str, Any]:
        _, body = await renter_request(request, rental_id, statuses=(ACTIVE,))
        await run_in_threadpool(daemon.runtime.put_archive, rental_id, path, body)
        return {"rental_id": rental_id, "path": path, "bytes": len(body)}

    @app.get("/v1/rentals/{rental_id}/archive")
    async def get_archive(rental_id: int, request: Request, path: str) -> StreamingResponse:
        await renter_request(request, rental_id, statuses=(ACTIVE,))
        stream = await run_in_threadpool(daemon.runtime.get_archive, rental_id, path)
        return StreamingResponse(stream, media_type="application/x-tar")

    @app.websocket("/v1/rentals/{rental_id}/shell")
    async def shell(websocket: WebSocket, rental_id: int) -> None:
        """A TTY shell: bytes from the socket go to the shell's stdin, its output comes back."""
        try:
            await renter_request(websocket, rental_id, statuses=(ACTIVE,))
            sock = await run_in_threadpool(daemon.runtime.open_shell, rental_id)
        except (AuthError, HTTPException, ProviderError) as exc:
            await websocket.accept()  # then close with the reason: a refused upgrade would lose it
            await websocket.close(code=4409 if isinstance(exc, ProviderError) else 4403,
                                  reason=str(getattr(exc, "detail", exc))[:120])
            return
        await websocket.accept()
        loop = asyncio.get_running_loop()

        async def pump_out() -> None:
            while True:
                data = await loop.run_in_executor(None, sock.recv, 65536)
                if not data:
                    return
                await websocket.send_bytes(data)

        out = asyncio.ensure_future(pump_out())
        try:
            while not out.done():
                receive = asyncio.ensure_future(websocket.receive_bytes())
                done, _ = await asyncio.wait({receive, out}, return_when=asyncio.FIRST_COMPLETED)
                if receive in done:
                    await loop.run_in_executor(None, sock.sendall, receive.result())
                else:
                    receive.cancel()
        except WebSocketDisconnect:
            pass
        finally:
            out.cancel()
            sock.close()
            try:
                await websocket.close()
            except RuntimeError:
                pass

    return app
