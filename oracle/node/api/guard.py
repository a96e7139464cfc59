"""``BodyGuard``: an ASGI middleware that bounds what reading request bodies can cost the node.

- a body larger than its route allows is refused from its ``Content-Length`` (413) before a
  byte of it is read, and cut off at the limit when it comes chunked;
- a body must arrive within ``body_timeout_s`` of the request's headers (408 and the
  connection closed otherwise: a client that holds a half-sent body frees its slot);
- all bodies being read at once share ``max_inflight_bytes``: a request that would go beyond
  gets 503 with ``Retry-After`` without being read (300 held 1 MiB bodies cannot take 300 MiB).

Header read timeouts and connection limits live in the server (``oracle.node.serving``): they
act before a request reaches any ASGI code.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTimeout(Exception):
    """The client did not send its body in time."""


class BodyTooLong(Exception):
    """The body went beyond its limit while being read (chunked, or a lying Content-Length)."""


class InflightBodies:
    """Bytes of request bodies being read right now (one event loop: no lock needed)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.reserved = 0

    def reserve(self, size: int) -> bool:
        if self.reserved + size > self.max_bytes:
            return False
        self.reserved += size
        return True

    def release(self, size: int) -> None:
        self.reserved -= size


async def _answer(send: Send, status: int, reason: str, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail, "reason": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """``limit_for(path) -> max body bytes`` (0: the route takes no body)."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int], body_timeout_s: float,
                 max_inflight_bytes: int, on_refusal: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.limit_for = limit_for
        self.body_timeout_s = body_timeout_s
        self.inflight = InflightBodies(max_inflight_bytes)
        self.on_refusal = on_refusal

    def _count(self, reason: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(reason)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
                break
        if declared is not None and (declared < 0 or declared > limit):
            self._count("too_large")
            await _answer(send, 413, "too_large", f"request body is {declared} bytes, the limit here is {limit}")
            return
        reserve = limit if declared is None else declared
        if not self.inflight.reserve(reserve):
            self._count("busy")
            await _answer(send, 503, "busy", "too many request bodies in flight; retry shortly",
                          [(b"retry-after", b"1")])
            return
        deadline = time.monotonic() + self.body_timeout_s
        received = 0
        started = False

        async def guarded_receive() -> Message:
            nonlocal received
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BodyTimeout()
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLong()
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except BodyTimeout:
            self._count("body_timeout")
            if not started:
                await _answer(send, 408, "body_timeout", f"request body not received within {self.body_timeout_s:g} s")
        except BodyTooLong:
            self._count("too_large")
            if not started:
                await _answer(send, 413, "too_large", f"request body exceeds the limit of {limit} bytes")
        finally:
            self.inflight.release(reserve)
