"""What the daemon tells the provider: one log line per event, and an optional webhook.

Events: ``rental_opened``, ``rental_started``, ``rental_ended``, ``budget_low``, ``fault``,
``slash``, ``container_lost``, ``refused``. The webhook gets ``POST`` with a JSON body
``{"event": ..., "rental_id": ..., "at": unix seconds, ...details}``, sent from a background
thread with a 5 s timeout; a webhook that fails is logged and never blocks the daemon.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

log = logging.getLogger("oracle.provider.events")


class Notifier:
    def __init__(self, webhook_url: str | None = None, timeout_s: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.sent: list[dict[str, Any]] = []  # every event, for tests and `status`
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        if webhook_url:
            self._thread = threading.Thread(target=self._deliver, name="provider-webhook", daemon=True)
            self._thread.start()

    def event(self, name: str, rental_id: int | None = None, **details: Any) -> None:
        body = {"event": name, "rental_id": rental_id, "at": int(time.time()), **details}
        self.sent.append(body)
        text = " ".join(f"{k}={v}" for k, v in details.items())
        level = logging.WARNING if name in ("fault", "slash", "container_lost", "refused", "budget_low") else logging.INFO
        log.log(level, "%s rental=%s %s", name, rental_id, text)
        if self._thread is not None:
            try:
                self._queue.put_nowait(body)
            except queue.Full:
                log.warning("webhook queue full; dropped %s", name)

    def _deliver(self) -> None:
        import httpx

        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                httpx.post(self.webhook_url, json=body, timeout=self.timeout_s).raise_for_status()
            except Exception as exc:  # a webhook must never stop the daemon
                log.warning("webhook %s failed for %s: %s", self.webhook_url, body["event"], exc)

    def close(self) -> None:
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                return  # the thread is a daemon thread; it dies with the process
            self._thread.join(timeout=self.timeout_s + 1)
