"""Renter requests to the provider daemon, signed with the renter's Ethereum key.

Every request carries three headers::

    X-Gpurent-Address:   the signer's checksummed address
    X-Gpurent-Timestamp: unix seconds when it was signed
    X-Gpurent-Nonce:     16 random bytes, hex (two identical requests in one second still differ)
    X-Gpurent-Signature: 0x + 65-byte EIP-191 (personal_sign) signature of request_message()

``request_message`` binds the chain id and market address (a signature for one deployment is
useless on another), the HTTP method, the path with its query string, keccak256 of the body,
the timestamp and the nonce. The daemon recovers the signer, requires it to be the rental's renter as
stored on chain, the timestamp within ``max_skew_s`` of its clock, and each signature used at
most once within that window (``ReplayGuard``). A stranger's key, a replayed or re-targeted
request, or a body changed on the way are refused.

The recovered public key is also where the daemon seals connection details (only the renter
can read them).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_defunct
from eth_hash.auto import keccak
from eth_keys import keys as eth_keys

from oracle.provider import AuthError

ADDRESS_HEADER = "X-Gpurent-Address"
TIMESTAMP_HEADER = "X-Gpurent-Timestamp"
NONCE_HEADER = "X-Gpurent-Nonce"
SIGNATURE_HEADER = "X-Gpurent-Signature"
MAX_SKEW_S = 60


def request_message(chain_id: int, market: str, method: str, path: str, body: bytes, timestamp: int,
                    nonce: str) -> str:
    """The text the renter signs (EIP-191 version 0x45, ``personal_sign``)."""
    return "\n".join([
        "gpurent provider request",
        f"chain:{int(chain_id)}",
        f"market:{market.lower()}",
        f"{method.upper()} {path}",
        f"body:0x{keccak(body).hex()}",
        f"time:{int(timestamp)}",
        f"nonce:{nonce}",
    ])


def sign_request(private_key: bytes, chain_id: int, market: str, method: str, path: str, body: bytes,
                 timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four headers for one request."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    nonce = secrets.token_hex(16) if nonce is None else nonce
    message = encode_defunct(text=request_message(chain_id, market, method, path, body, ts, nonce))
    signed = Account.sign_message(message, private_key)
    return {
        ADDRESS_HEADER: Account.from_key(private_key).address,
        TIMESTAMP_HEADER: str(ts),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: "0x" + bytes(signed.signature).hex(),
    }


@dataclass(frozen=True)
class VerifiedRequest:
    address: str
    public_key: bytes  # 64 bytes: where replies for this signer are sealed
    timestamp: int
    signature: bytes


def verify_request(headers: dict[str, str], chain_id: int, market: str, method: str, path: str, body: bytes,
                   now_s: int, max_skew_s: int = MAX_SKEW_S) -> VerifiedRequest:
    """Recover and check the signer of a request (not yet whether it is the renter)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        claimed = lowered[ADDRESS_HEADER.lower()]
        ts = int(lowered[TIMESTAMP_HEADER.lower()])
        nonce = lowered[NONCE_HEADER.lower()]
        sig_hex = lowered[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        raise AuthError("unsigned request: X-Gpurent-Address, -Timestamp and -Signature are required") from None
    if abs(now_s - ts) > max_skew_s:
        raise AuthError(f"request signed at {ts}, {now_s - ts:+d} s from the daemon's clock (limit {max_skew_s} s)")
    try:
        signature = bytes.fromhex(sig_hex.removeprefix("0x"))
        if len(signature) != 65:
            raise ValueError
        v = signature[64] - 27 if signature[64] >= 27 else signature[64]
        digest = _hash_eip191_message(encode_defunct(text=request_message(chain_id, market, method, path, body, ts, nonce)))
        public_key = eth_keys.Signature(signature[:64] + bytes([v])).recover_public_key_from_msg_hash(digest)
    except Exception:
        raise AuthError("malformed request signature") from None
    address = public_key.to_checksum_address()
    if address.lower() != claimed.lower():
        raise AuthError("the signature does not match X-Gpurent-Address (wrong key, or the request was altered)")
    return VerifiedRequest(address, public_key.to_bytes(), ts, signature)


class ReplayGuard:
    """Remembers signatures seen within the skew window; a second use is refused."""

    def __init__(self, window_s: int = MAX_SKEW_S) -> None:
        self.window_s = window_s
        self._seen: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def check(self, request: VerifiedRequest, now_s: int) -> None:
        with self._lock:
            if len(self._seen) > 10_000 or now_s % 16 == 0:
                horizon = now_s - 2 * self.window_s
                self._seen = {s: t for s, t in self._seen.items() if t >= horizon}
            if request.signature in self._seen:
                raise AuthError("this request was already used (replay)")
            self._seen[request.signature] = request.timestamp
