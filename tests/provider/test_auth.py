"""Signed renter requests (EIP-191 over chain, market, method, path, body hash and time)."""

from __future__ import annotations

import pytest
from eth_account import Account

from oracle.provider import AuthError
from oracle.provider.auth import ReplayGuard, sign_request, verify_request
from oracle.provider.workload import public_key_of

RENTER = bytes.fromhex("33" * 32)
MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NOW = 1_800_000_000


def signed(**kw):
    args = {"chain_id": 31337, "market": MARKET, "method": "POST", "path": "/v1/rentals/7/exec",
            "body": b'{"cmd":["id"]}', "timestamp": NOW}
    args.update(kw)
    return sign_request(RENTER, **args)


def verify(headers, **kw):
    args = {"chain_id": 31337, "market": MARKET, "method": "POST", "path": "/v1/rentals/7/exec",
            "body": b'{"cmd":["id"]}', "now_s": NOW}
    args.update(kw)
    return verify_request(headers, **args)


def test_a_signed_request_recovers_the_renter_and_its_public_key():
    got = verify(signed())
    assert got.address == Account.from_key(RENTER).address
    assert got.public_key == public_key_of(RENTER)


@pytest.mark.parametrize("changed", [{"body": b'{"cmd":["rm","-rf","/"]}'}, {"path": "/v1/rentals/8/exec"},
                                     {"method": "PUT"}, {"chain_id": 1}, {"market": "0x" + "ab" * 20}])
def test_a_request_altered_or_replayed_elsewhere_is_refused(changed):
    with pytest.raises(AuthError, match="does not match"):
        verify(signed(), **changed)


def test_a_stale_or_future_request_is_refused():
    with pytest.raises(AuthError, match="from the daemon's clock"):
        verify(signed(timestamp=NOW - 61))
    with pytest.raises(AuthError, match="from the daemon's clock"):
        verify(signed(timestamp=NOW + 61))
    assert verify(signed(timestamp=NOW - 60)).timestamp == NOW - 60


def test_unsigned_or_malformed_requests_are_refused():
    with pytest.raises(AuthError, match="unsigned"):
        verify({})
    headers = signed()
    headers["X-Gpurent-Signature"] = "0x1234"
    with pytest.raises(AuthError, match="malformed"):
        verify(headers)


def test_a_claimed_address_that_did_not_sign_is_refused():
    headers = signed()
    headers["X-Gpurent-Address"] = Account.from_key(bytes.fromhex("44" * 32)).address
    with pytest.raises(AuthError, match="does not match"):
        verify(headers)


def test_each_signature_is_accepted_once():
    guard = ReplayGuard()
    request = verify(signed())
    guard.check(request, NOW)
    with pytest.raises(AuthError, match="replay"):
        guard.check(request, NOW + 1)
    guard.check(verify(signed(timestamp=NOW + 1), now_s=NOW + 1), NOW + 1)


def test_two_identical_requests_in_the_same_second_are_both_accepted():
    """`rent connection` then `rent ssh` within one second (or two `rent logs`) are not replays."""
    guard = ReplayGuard()
    for _ in range(2):
        guard.check(verify(signed()), NOW)


def test_a_request_without_its_nonce_is_refused():
    headers = {k: v for k, v in signed().items() if k != "X-Gpurent-Nonce"}
    with pytest.raises(AuthError):
        verify(headers)
