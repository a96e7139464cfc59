"""Issue 9, "nothing a stranger sends costs more than its own bytes": a real node process, real sockets.

The attacker's sockets bind to 127.0.0.2 (still loopback), the operator's /healthz comes from
127.0.0.1, so the per-IP limits can be told apart. Every loop is bounded; every socket is closed.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from contextlib import ExitStack

import httpx
import pytest

from oracle.node.testing import AGENT_KEY, TRACE_A, NodeProcess, dev_node_env, rental_env
from oracle.telemetry.batches import address_of

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not TRACE_A.is_file(), reason="shared H100 trace not present")]

RENTAL = 3
ATTACKER = "127.0.0.2"


def node_env(tmp_path, **limits) -> dict[str, str]:
    return dev_node_env(tmp_path / "node.sqlite3", rental_env(RENTAL, address_of(AGENT_KEY), 0), **limits)


def attacker_socket(port: int, stack: ExitStack) -> socket.socket:
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.bind((ATTACKER, 0))
    sock.settimeout(2.0)
    sock.connect(("127.0.0.1", port))
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed (or reset) the connection; False while it is open."""
    sock.settimeout(0.01)
    try:
        return sock.recv(65536) == b"" or True  # any answer means the server dealt with it
    except socket.timeout:
        return False
    except OSError:
        return True


def healthz_seconds(url: str) -> float:
    started = time.perf_counter()
    response = httpx.get(url + "/healthz", timeout=5.0)
    assert response.status_code == 200
    return time.perf_counter() - started


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slow_header_connections_are_closed_and_cannot_starve_healthz(tmp_path):
    env = node_env(tmp_path, header_timeout_s=1, max_connections_per_ip=200)
    with NodeProcess(env) as node, ExitStack() as stack:
        socks = []
        for _ in range(300):  # beyond the per-IP cap: the rest are closed on accept
            sock = attacker_socket(node.port, stack)
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            except OSError:
                pass
            socks.append(sock)
        assert statistics.median(healthz_seconds(node.url) for _ in range(5)) < 2.0
        deadline = time.monotonic() + 6.0
        open_socks = socks
        while open_socks and time.monotonic() < deadline:
            open_socks = [s for s in open_socks if not closed_by_server(s)]
            time.sleep(0.1)
        assert open_socks == [], f"{len(open_socks)} slow-header connections still open after the header timeout"
        assert healthz_seconds(node.url) < 1.0


def test_held_request_bodies_are_bounded_in_memory_and_time(tmp_path):
    # The held bodies time out after 4 s; /healthz must answer well before that (a node that
    # waited on them would answer only after it), not within a tight bound a loaded machine misses.
    env = node_env(tmp_path, body_timeout_s=4, max_inflight_body_bytes=8 << 20)
    with NodeProcess(env) as node, ExitStack() as stack:
        rss_before = rss_bytes(node.proc.pid)
        head = (f"POST /v1/rentals/{RENTAL}/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {1 << 20}\r\n\r\n").encode()
        socks = []
        for _ in range(200):
            sock = attacker_socket(node.port, stack)
            sock.settimeout(0.2)
            try:
                sock.sendall(head)
                sock.sendall(b"{" + b" " * (512 * 1024))  # half of the declared MiB, then hold it
            except OSError:  # the node answered 503 and stopped reading: what we want
                pass
            socks.append(sock)
        assert statistics.median(healthz_seconds(node.url) for _ in range(5)) < 2.0
        grown = rss_bytes(node.proc.pid) - rss_before
        assert grown < 48 << 20, f"node RSS grew by {grown >> 20} MiB for 200 held bodies"
        answers = []
        deadline = time.monotonic() + 12.0
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            still = []
            for sock in pending:
                sock.settimeout(0.01)
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    still.append(sock)
                    continue
                except OSError:
                    data = b""
                answers.append(data.split(b" ", 2)[1] if data.startswith(b"HTTP/1.1") else b"closed")
            pending = still
            time.sleep(0.05)
        assert pending == [], f"{len(pending)} held bodies still open after the body timeout"
        assert set(answers) <= {b"503", b"408", b"closed"} and b"503" in answers and b"408" in answers, answers


def test_a_batch_for_an_unknown_rental_is_refused_before_its_body_is_read(tmp_path):
    with NodeProcess(node_env(tmp_path)) as node, ExitStack() as stack:
        sock = attacker_socket(node.port, stack)
        # 544 KiB announced, not one byte of it sent: the answer comes from the path alone.
        sock.sendall(f"POST /v1/rentals/999/batches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {544 * 1024}\r\n\r\n".encode())
        sock.settimeout(3.0)
        answer = b""
        for _ in range(20):  # the head and the body may come in separate reads
            chunk = sock.recv(65536)
            answer += chunk
            if not chunk or answer.endswith(b"}"):
                break
        status, _, rest = answer.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 404"), answer[:200]
        assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["reason"] == "unknown_rental"
