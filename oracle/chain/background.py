"""``BackgroundLoop``: start and stop an object's ``run()`` loop in one daemon thread."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundLoop:
    """``start()`` runs ``self.run()`` in a daemon thread named ``thread_name`` (once: a second
    call while it runs does nothing); ``stop()`` sets ``self._stop``, which ``run()`` watches, and
    joins the thread. Subclasses set ``self._stop = threading.Event()`` and ``self._thread = None``
    in ``__init__``."""

    thread_name = "gpurent-loop"
    _stop: threading.Event
    _thread: threading.Thread | None

    def run(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
