"""Issue 9, "Secrets": an RPC API key in the URL shows nowhere (status, logs, error messages)."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from oracle.chain.anvil import free_port
from oracle.node.testing import NodeProcess, dev_node_env
from oracle.redact import RedactingFilter, redact, redact_url, register_secret_url

KEY = "0123456789abcdef0123456789abcdef"
SECRETS = (KEY, "TOPSECRETKEY123", "pa55word1234")


@pytest.mark.parametrize("url, shown", [
    (f"https://mainnet.infura.io/v3/{KEY}", "https://mainnet.infura.io/..."),
    ("https://rpc.example.org/?apikey=TOPSECRETKEY123", "https://rpc.example.org/..."),
    ("https://user:pa55word1234@rpc.example.org:8545", "https://rpc.example.org:8545"),
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
])
def test_redact_url_keeps_only_scheme_host_and_port(url, shown):
    assert redact_url(url) == shown


def test_redact_hides_urls_inside_any_text_and_registered_secrets_on_their_own():
    url = f"https://user:pa55word1234@rpc.example.org/v3/{KEY}?apikey=TOPSECRETKEY123"
    register_secret_url(url)
    text = (f"ConnectionError: HTTPSConnectionPool(host='rpc.example.org', port=443): Max retries exceeded "
            f"with url: /v3/{KEY}?apikey=TOPSECRETKEY123 (while calling {url})")
    cleaned = redact(text)
    assert not any(secret in cleaned for secret in SECRETS), cleaned
    assert "rpc.example.org" in cleaned


def test_log_records_are_redacted_message_arguments_and_traceback(caplog):
    register_secret_url(f"https://rpc.example.org/v3/{KEY}")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "RPC %s failed", (f"/v3/{KEY}",), None)
    try:
        raise RuntimeError(f"boom at https://rpc.example.org/v3/{KEY}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert KEY not in record.getMessage() and KEY not in record.exc_text


def test_a_node_shows_no_rpc_secret_in_healthz_logs_or_errors(tmp_path):
    dead = free_port()  # nothing listens: every RPC call fails with the URL in its message
    rpc_url = f"http://user:pa55word1234@127.0.0.1:{dead}/v3/{KEY}?apikey=TOPSECRETKEY123"
    env = dev_node_env(tmp_path / "node.sqlite3", rpc_url=rpc_url, log_level="info")
    with NodeProcess(env) as node:
        deadline = time.monotonic() + 20
        health = {}
        while time.monotonic() < deadline:
            health = httpx.get(node.url + "/healthz", timeout=5).json()
            if health.get("chain", {}).get("detail"):
                break
            time.sleep(0.2)
        assert health["chain"]["state"] == "rpc_unreachable" and health["chain"]["detail"], health
        text = str(health) + node.output()
    assert "RPC http://127.0.0.1:" in text  # the host is shown, so the operator knows which endpoint
    assert not any(secret in text for secret in SECRETS), [s for s in SECRETS if s in text]
