"""The daemon's events: a log line each, and a JSON POST to the provider's webhook."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from oracle.provider.notify import Notifier


def test_events_are_logged_and_posted_to_the_webhook_and_a_dead_webhook_never_blocks(caplog):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        notifier = Notifier(f"http://127.0.0.1:{server.server_port}/hook")
        with caplog.at_level("INFO", logger="oracle.provider.events"):
            notifier.event("rental_started", 7, container="abc", gpus="GPU-0")
            notifier.event("budget_low", 7, remaining=10, budget=100)
        deadline = time.monotonic() + 10
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        notifier.close()
    finally:
        server.shutdown()
    assert [(r["event"], r["rental_id"]) for r in received] == [("rental_started", 7), ("budget_low", 7)]
    assert received[1]["remaining"] == 10 and isinstance(received[0]["at"], int)
    assert "rental_started rental=7 container=abc gpus=GPU-0" in caplog.text
    assert any(r.levelname == "WARNING" and "budget_low" in r.getMessage() for r in caplog.records)

    dead = Notifier("http://10.255.255.1:9/hook", timeout_s=5)  # unroutable: a send would hang for 5 s
    started = time.monotonic()
    dead.event("fault", 1, fault="FOREIGN_PROCESS")
    assert time.monotonic() - started < 1  # sent from a background thread
    dead.close()
