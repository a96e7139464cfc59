"""The aggregator's HTTP side: asking the nodes (this one and its peers) for signatures.

A peer that answers 429 is not asked again before its ``Retry-After`` (seconds, capped by
``max_retry_after_s``; 1 s when absent), and the request is retried after that wait, up to
``max_rate_limited_waits`` times: a settlement round slows down to what the peers accept
instead of losing its rentals to ``no_quorum``. A wait is cut short by ``stop`` (shutdown).

Requests carry ``auth`` (an :class:`httpx.Auth`, e.g. the peer authentication of the node
API) when one is given.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable, Sequence

import httpx

from oracle.protocol import MAX_BATCH_REPORTS

#: What one report request or one batch-signature request may name (the node API's limit).
MAX_REPORTS_PER_REQUEST = MAX_BATCH_REPORTS


def retry_after_s(response: httpx.Response, default_s: float = 1.0) -> float:
    """The ``Retry-After`` of a 429 answer in seconds (delta-seconds form; else ``default_s``)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return default_s


def detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:200]
    except (ValueError, AttributeError):
        return response.text[:200]


class Peers:
    """JSON over HTTP to ``urls``; an answer is a dict, or a string saying why there is none."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        http: httpx.Client | None = None,
        timeout_s: float = 5.0,
        auth: httpx.Auth | None = None,
        max_retry_after_s: float = 30.0,
        max_rate_limited_waits: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("no node URLs to collect signatures from")
        self.urls = [u.rstrip("/") for u in urls]
        self.http = http or httpx.Client(timeout=timeout_s)
        self.auth = auth
        self.max_retry_after_s = max_retry_after_s
        self.max_rate_limited_waits = max_rate_limited_waits
        self.stop = threading.Event()
        self.stats: dict[str, int] = defaultdict(int)
        self._clock = clock
        self._not_before: dict[str, float] = {}  # url -> monotonic time its Retry-After ends

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | str:
        return self.request("GET", url, path, params=params)

    def post(self, url: str, path: str, body: dict[str, Any]) -> dict[str, Any] | str:
        return self.request("POST", url, path, json=body)

    def _wait_for(self, url: str) -> bool:
        """Sleep until ``url``'s Retry-After has passed; True when stopped meanwhile."""
        until = self._not_before.get(url)
        if until is None:
            return False
        wait = until - self._clock()
        if wait <= 0:
            self._not_before.pop(url, None)
            return False
        self.stats["rate_limited_wait_ms"] += int(wait * 1000)
        return self.stop.wait(wait)

    def request(self, method: str, url: str, path: str, **kwargs: Any) -> dict[str, Any] | str:
        extra = {"auth": self.auth} if self.auth is not None else {}
        for _ in range(self.max_rate_limited_waits + 1):
            if self._wait_for(url):
                return "stopped"
            try:
                response = self.http.request(method, url + path, **kwargs, **extra)
            except httpx.HTTPError as exc:
                self.stats["peer_unreachable"] += 1
                return f"unreachable ({type(exc).__name__})"
            if response.status_code == 429:
                self.stats["rate_limited"] += 1
                wait = min(self.max_retry_after_s, retry_after_s(response))
                self._not_before[url] = self._clock() + wait
                continue
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {detail(response)}"
            try:
                return response.json()
            except ValueError:
                return "HTTP 200 without a JSON body"
        return f"HTTP 429: still rate limited after {self.max_rate_limited_waits} waits"
