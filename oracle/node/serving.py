"""The node's HTTP server: uvicorn with limits at the connection level.

What ASGI code cannot see, this bounds (``serve``):

- **header read timeout**: a request's headers must be complete within ``header_timeout_s`` of
  its first byte (a new connection, or the next request on a kept-alive one); otherwise the
  connection is closed. Slow-header connections cannot pile up.
- **connections per IP**: beyond ``max_connections_per_ip`` open connections from one address,
  a new one is closed on accept; **connections in all**: beyond ``max_connections`` a request is
  answered 503 (uvicorn's ``limit_concurrency``). One client cannot take the server's sockets.
- header size: h11's 16 KiB bound on an incomplete request head; keep-alive idle: 5 s.

Body size, body read time and the bytes of bodies in flight are bounded by
:class:`oracle.node.api.guard.BodyGuard` inside the app. The process also raises its open-file
soft limit to the hard limit, so the connection limits bind before the descriptor table does.
"""

from __future__ import annotations

import asyncio
import resource
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ServerLimits:
    header_timeout_s: float = 10.0
    max_connections: int = 4096
    max_connections_per_ip: int = 256
    keep_alive_s: float = 5.0
    max_header_bytes: int = 16 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> "ServerLimits":
        return cls(header_timeout_s=settings.header_timeout_s, max_connections=settings.max_connections,
                   max_connections_per_ip=settings.max_connections_per_ip)


def hardened_h11(limits: ServerLimits) -> type[H11Protocol]:
    """An h11 protocol class with the header timeout and the per-IP connection cap of ``limits``."""
    per_ip: dict[str, int] = {}

    class HardenedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _counted_ip: str | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ip = self.client[0] if self.client else "unknown"
            if per_ip.get(ip, 0) >= limits.max_connections_per_ip:
                transport.abort()
                return
            per_ip[ip] = per_ip.get(ip, 0) + 1
            self._counted_ip = ip
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            if self._counted_ip is not None:
                left = per_ip.get(self._counted_ip, 1) - 1
                if left > 0:
                    per_ip[self._counted_ip] = left
                else:
                    per_ip.pop(self._counted_ip, None)
                self._counted_ip = None
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:  # a request head has begun and is not complete
                self._arm_header_timer()
            else:
                self._cancel_header_timer()

        def _arm_header_timer(self) -> None:
            if self._header_timer is None and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(limits.header_timeout_s, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.abort()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Idle between requests is the keep-alive timer's; the next head's bytes re-arm ours.
            self._cancel_header_timer()

    return HardenedH11Protocol


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def uvicorn_config(app: Any, host: str, port: int, limits: ServerLimits, *, log_level: str = "info",
                   access_log: bool = False) -> Any:
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log,
        http=hardened_h11(limits), limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_s, h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=2048,
    )


def serve(app: Any, host: str, port: int, limits: ServerLimits, *, log_level: str = "info",
          access_log: bool = False) -> None:
    """Serve ``app`` until interrupted (SIGINT/SIGTERM), with ``limits``."""
    import uvicorn

    from oracle.redact import install_log_redaction

    raise_open_file_limit()
    config = uvicorn_config(app, host, port, limits, log_level=log_level, access_log=access_log)
    server = uvicorn.Server(config)
    config.load()  # sets up uvicorn's loggers: their handlers get the redaction filter too
    install_log_redaction()
    server.run()
