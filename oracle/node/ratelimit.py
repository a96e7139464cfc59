"""Token buckets per key (client IP, verified agent), bounded in memory."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable


class TokenBucketLimiter:
    """``rate_per_s`` tokens a second up to ``burst``; one token per request.

    Keeps at most ``max_keys`` buckets (least recently used dropped: a dropped key starts full,
    which only ever errs towards admitting a request).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str) -> int:
        """0 if admitted, else the whole seconds to wait before a token is available (>= 1)."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate_per_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0
            else:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate_per_s))
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait
