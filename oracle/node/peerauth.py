"""Peer requests: signer-set members sign what they ask another node (EIP-191 over the request line).

A node's aggregator collects report signatures from every node of the signer set, its own
included. Those requests carry three headers::

    X-Gpurent-Peer:       the signer's checksummed address
    X-Gpurent-Timestamp:  unix seconds when the request was made
    X-Gpurent-Signature:  0x + 65 bytes, EIP-191 signature of keccak256(peer_message(...))

``peer_message`` binds the method, the path with its query, the timestamp, the chain id and the
market, so a signature is good for that one request (within ``window_s`` of the receiving node's
clock) and that one deployment. The receiving node accepts the request as a peer's when the
signature recovers to the named address and that address is a known signer (its own key, the
configured ``peer_signers``, and with ``rpc_url`` the chain's signer set, read again after a
rotation): peers then get their own rate limit instead of the per-IP one. A request without the
headers, or validly signed by a key outside the signer set, is a stranger's; one with bad headers
(forged, stale, for another request or deployment) is refused (401).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import httpx

from oracle.telemetry.batches import (
    address_of,
    keccak,
    recover_batch_signer,
    sign_batch_hash,
    to_checksum_address,
)

PEER_HEADER = "x-gpurent-peer"
TIMESTAMP_HEADER = "x-gpurent-timestamp"
SIGNATURE_HEADER = "x-gpurent-signature"


class PeerAuthError(ValueError):
    """Peer headers that do not prove a known signer made this request now."""


def peer_message(method: str, path_and_query: str, timestamp_s: int, chain_id: int, market: str) -> bytes:
    return (f"gpurent-peer-request\n{method.upper()}\n{path_and_query}\n{timestamp_s}\n{chain_id}\n"
            f"{to_checksum_address(market)}").encode()


def sign_request(key: bytes, method: str, path_and_query: str, chain_id: int, market: str,
                 now_s: int | None = None) -> dict[str, str]:
    """The three headers that make a request a peer's."""
    timestamp_s = int(time.time()) if now_s is None else now_s
    digest = keccak(peer_message(method, path_and_query, timestamp_s, chain_id, market))
    return {
        PEER_HEADER: address_of(key),
        TIMESTAMP_HEADER: str(timestamp_s),
        SIGNATURE_HEADER: "0x" + sign_batch_hash(key, digest).hex(),
    }


class PeerAuth(httpx.Auth):
    """httpx auth that signs every request with the node key (the aggregator's HTTP client)."""

    def __init__(self, key: bytes, chain_id: int, market: str) -> None:
        self._key, self._chain_id, self._market = key, chain_id, market

    def auth_flow(self, request: httpx.Request):
        path = request.url.raw_path.decode("ascii")
        request.headers.update(sign_request(self._key, request.method, path, self._chain_id, self._market))
        yield request


@dataclass(frozen=True, slots=True)
class Peer:
    address: str


class PeerVerifier:
    """Checks peer headers against the known signers (updated as the chain's signer set changes)."""

    #: At most one signer-set read per this many seconds, when an unknown signer asks (a rotation).
    REFRESH_EVERY_S = 30.0

    def __init__(self, chain_id: int, market: str, signers: Iterable[str], window_s: int = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self.chain_id, self.market, self.window_s = chain_id, market, window_s
        self._clock = clock
        self._static = {to_checksum_address(a) for a in signers}
        self._chain: set[str] = set()
        self._lock = threading.Lock()
        self.refresh: Callable[[], Iterable[str]] | None = None  # reads the chain's signer set
        self._refreshed_at = float("-inf")

    def _refresh_for(self, address: str) -> bool:
        """Re-read the chain's signer set (rate limited) and say whether ``address`` is in it now."""
        if self.refresh is None:
            return False
        with self._lock:
            now = self._clock()
            if now - self._refreshed_at < self.REFRESH_EVERY_S:
                return False
            self._refreshed_at = now
        try:
            self.set_chain_signers(self.refresh())
        except Exception:  # RPC trouble: the request is refused as before, retried later
            return False
        return self.known(address)

    def set_chain_signers(self, signers: Iterable[str]) -> None:
        with self._lock:
            self._chain = {to_checksum_address(a) for a in signers}

    def known(self, address: str) -> bool:
        with self._lock:
            return address in self._static or address in self._chain

    def verify(self, method: str, path_and_query: str, headers: dict[str, str] | None) -> Peer | None:
        """The peer that signed this request; None without peer headers; PeerAuthError if they fail."""
        headers = headers or {}
        named, stamp, signature = (headers.get(h) for h in (PEER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
        if named is None and stamp is None and signature is None:
            return None
        if named is None or stamp is None or signature is None:
            raise PeerAuthError("peer requests carry all of X-Gpurent-Peer, -Timestamp and -Signature")
        if not stamp.isdigit() or len(stamp) > 12:
            raise PeerAuthError("X-Gpurent-Timestamp must be unix seconds")
        if abs(self._clock() - int(stamp)) > self.window_s:
            raise PeerAuthError(f"peer request timestamp is more than {self.window_s} s from this node's clock")
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
            digest = keccak(peer_message(method, path_and_query, int(stamp), self.chain_id, self.market))
            signer = recover_batch_signer(digest, raw)
        except Exception:
            raise PeerAuthError("X-Gpurent-Signature does not recover") from None
        if signer.lower() != named.lower():
            raise PeerAuthError("X-Gpurent-Signature was not made by X-Gpurent-Peer")
        if not self.known(signer) and not self._refresh_for(signer):
            return None  # a valid signature of a key outside the signer set: a stranger like any other
        return Peer(signer)
