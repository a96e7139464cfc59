"""Sending transactions with a local signer: nonces, fees, retries, receipts.

``TransactionSender`` is the one place that turns a contract call into a mined, successful
transaction or a ``ChainError`` that says why not:

- **Signer**: a local key (from an encrypted keystore, see ``oracle.keys``); nothing is signed by
  the RPC node.
- **Nonces**: the next nonce is ``max(local counter, chain's pending count)``, taken under a lock so
  threads of one process never collide; "nonce too low" from the node resyncs and rebuilds
  (unless the rejected nonce already carries *our* transaction, which then counts as sent).
- **Fees**: EIP-1559 (``maxFeePerGas = base_fee * multiplier + tip``) capped by
  ``TxPolicy.max_fee_per_gas_cap_wei``; a base fee above the cap refuses to send
  (``FeeCapExceededError``). Chains without a base fee get a legacy ``gasPrice``, same cap.
  A transaction not mined within ``receipt_timeout_s`` is replaced with the same nonce and fees
  raised by ``fee_bump_bps`` (at most ``max_fee_bumps`` times, never above the cap).
- **Retries**: transient RPC failures (connection refused or reset, timeouts, HTTP 429/5xx,
  "header not found") are retried with exponential backoff and jitter, ``rpc_retries`` times;
  then ``RpcUnavailableError``. Re-sending the same signed bytes is idempotent.
- **Receipts**: status 0 raises ``TransactionRevertedError`` with the custom error decoded from
  the contract ABI (the failed call is replayed with ``eth_call`` to recover revert data);
  a call that would revert is caught before sending, at gas estimation, with the same error.
  With ``TxPolicy.confirmations = N`` a receipt counts only once N blocks are on top of it and
  its block is still canonical; a transaction reorganised out is rebroadcast and awaited again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)

from oracle.chain.errors import (
    ErrorDecoder,
    FeeCapExceededError,
    NonceError,
    TransactionRevertedError,
    TransactionTimeoutError,
)
from oracle.chain.nonces import NonceManager
from oracle.chain.rpc import T, _rpc_message, is_transient, retry_rpc, wait_for_block
from oracle.chain.txpolicy import GWEI, TxPolicy, bumped_fees
from oracle.errors import ChainError

__all__ = ["GWEI", "NonceManager", "OnSigned", "Submitted", "TransactionSender", "TxPolicy", "TxResult",
           "is_transient", "retry_rpc", "wait_for_block"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    receipt: Any
    gas_used: int
    effective_gas_price_wei: int
    block_number: int
    events: dict[str, list[Any]] = field(default_factory=dict)
    replaced: tuple[str, ...] = ()  # hashes of earlier versions (same nonce, lower fees) it replaced

    @property
    def fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price_wei


class Submitted(NamedTuple):
    """A signed transaction handed to the node: what ``TransactionSender.wait`` needs to see it mined."""

    base: dict[str, Any]  # to/data/value/gas/from/chainId: everything but nonce and fees
    signed: Any  # .raw_transaction and .hash
    nonce: int
    fees: dict[str, int]

    @property
    def tx_hash(self) -> str:
        return self.signed.hash.to_0x_hex()


class _Signed(NamedTuple):
    raw_transaction: HexBytes
    hash: HexBytes


#: Called with each newly signed transaction *before* its bytes go to the node (and again for a
#: fee-bumped replacement): ``(base, signed, nonce, fees)``. The action journal records it there.
OnSigned = Callable[[dict[str, Any], Any, int, dict[str, int]], None]


class TransactionSender:
    """Signs with a local key and sends, awaiting and checking receipts."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        *,
        policy: TxPolicy | None = None,
        error_decoder: ErrorDecoder | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address = account.address
        self.policy = policy or TxPolicy()
        self.decoder = error_decoder or ErrorDecoder.from_abis()
        self.nonces = NonceManager(w3, account.address)
        self._sleep = sleep
        self._chain_id: int | None = None
        # counters for metrics and tests: sent, nonce_resyncs, fee_bumps, rebroadcasts, rpc_retries
        self.stats: dict[str, int] = {"sent": 0, "nonce_resyncs": 0, "fee_bumps": 0, "rebroadcasts": 0,
                                      "rpc_retries": 0, "reverted": 0, "reorged": 0}

    # ------------------------------------------------------------------ RPC with retries
    def rpc(self, fn: Callable[[], T], what: str = "rpc") -> T:
        """Call ``fn`` retrying transient RPC failures with exponential backoff and jitter."""
        p = self.policy
        return retry_rpc(
            fn, what, retries=p.rpc_retries, backoff_base_s=p.backoff_base_s,
            backoff_max_s=p.backoff_max_s, sleep=self._sleep, on_retry=self._count_retry,
        )

    def _count_retry(self) -> None:
        self.stats["rpc_retries"] += 1

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc(lambda: self.w3.eth.chain_id, "eth_chainId")
        return self._chain_id

    # ------------------------------------------------------------------ fees
    def _priority_fee(self) -> int:
        p = self.policy
        if p.priority_fee_wei is not None:
            return p.priority_fee_wei
        try:
            tip = int(self.rpc(lambda: self.w3.eth.max_priority_fee, "eth_maxPriorityFeePerGas"))
        except ChainError:
            raise
        except Exception:  # node without the method
            tip = p.default_priority_fee_wei
        return min(tip, p.max_priority_fee_cap_wei)

    def fee_fields(self) -> dict[str, int]:
        """Fee fields for a new transaction, within the cap."""
        p = self.policy
        latest = self.rpc(lambda: self.w3.eth.get_block("latest"), "eth_getBlockByNumber")
        base_fee = latest.get("baseFeePerGas")
        legacy = p.legacy if p.legacy is not None else base_fee is None
        cap = p.max_fee_per_gas_cap_wei
        if legacy:
            price = int(self.rpc(lambda: self.w3.eth.gas_price, "eth_gasPrice"))
            if price > cap:
                raise FeeCapExceededError(f"gas price {price} wei is above the cap {cap} wei")
            return {"gasPrice": price}
        base_fee = int(base_fee or 0)
        if base_fee > cap:
            raise FeeCapExceededError(f"base fee {base_fee} wei is above the cap {cap} wei")
        tip = min(self._priority_fee(), cap - base_fee)
        max_fee = min(cap, base_fee * p.base_fee_multiplier + tip)
        return {"maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}

    # ------------------------------------------------------------------ revert data
    def _revert_from_exception(self, exc: ContractLogicError, function: str) -> TransactionRevertedError:
        data: str = ""
        if isinstance(exc.data, str):
            data = exc.data
        elif isinstance(exc.data, dict):
            data = str(exc.data.get("data") or "")
        name, args = self.decoder.decode(data)
        if not name and exc.message:
            msg = str(exc.message)
            if msg.startswith("execution reverted: "):
                name, args = "Error", {"message": msg[len("execution reverted: "):]}
        return TransactionRevertedError(name, args, data=data or "", function=function)

    def estimate_gas(self, tx: dict[str, Any], function: str = "") -> int:
        """Gas estimate plus the policy margin; a would-be revert raises TransactionRevertedError.

        Estimated against the ``pending`` block, the one the transaction goes into: its
        timestamp is the one the contract will see (a settlement's ``periodEnd`` must not be
        after it), where ``latest`` can be older (a chain that mines only on transactions)."""
        try:
            est = self.rpc(lambda: self.w3.eth.estimate_gas(tx, "pending"), f"estimate {function}")
        except ContractLogicError as exc:
            raise self._revert_from_exception(exc, function) from exc
        except Web3RPCError as exc:
            msg = _rpc_message(exc)
            if "revert" in msg:
                raise TransactionRevertedError("", {"message": msg}, function=function) from exc
            raise ChainError(f"estimate {function}: {msg}") from exc
        return est + est * self.policy.gas_margin_bps // 10_000

    def call(self, tx: dict[str, Any], function: str = "", block: Any = "latest") -> bytes:
        """eth_call with retries and decoded reverts."""
        try:
            return self.rpc(lambda: self.w3.eth.call(tx, block_identifier=block), f"call {function}")
        except ContractLogicError as exc:
            raise self._revert_from_exception(exc, function) from exc

    # ------------------------------------------------------------------ sending
    def send(
        self,
        tx: dict[str, Any],
        *,
        function: str = "",
        wait: bool = True,
        on_signed: OnSigned | None = None,
    ) -> TxResult | str:
        """Sign and send ``tx`` (``to``/``data``/``value``; ``gas`` optional) and await its receipt.

        Returns the TxResult of the mined transaction (or the hash with ``wait=False``).
        """
        submitted = self.submit(tx, function=function, on_signed=on_signed)
        if not wait:
            return submitted.tx_hash
        return self.wait(submitted, function=function, on_signed=on_signed)

    def submit(self, tx: dict[str, Any], *, function: str = "", on_signed: OnSigned | None = None) -> Submitted:
        """Estimate, sign (``on_signed`` sees the bytes first) and send ``tx``; do not wait."""
        base = {k: v for k, v in tx.items() if k not in ("nonce", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas")}
        base["from"] = self.address
        base.setdefault("value", 0)
        base["chainId"] = self.chain_id
        if "gas" not in base:
            base["gas"] = self.estimate_gas({k: v for k, v in base.items() if k != "chainId"}, function)
        with self.nonces.lock:
            signed, nonce, fees = self._sign_and_send_new(base, function, on_signed)
        return Submitted(base, signed, nonce, fees)

    def wait(self, submitted: Submitted, *, function: str = "", on_signed: OnSigned | None = None,
             earlier: Sequence[HexBytes] = ()) -> TxResult:
        """Await a submitted transaction (rebroadcast, fee bumps, confirmations) and check its receipt."""
        base, signed, nonce, fees = submitted
        return self._await(base, signed, nonce, fees, function, on_signed, earlier)

    def resume(self, base: dict[str, Any], raw_tx: bytes, tx_hashes: Sequence[str], nonce: int,
               fees: dict[str, int], *, function: str = "", on_signed: OnSigned | None = None) -> TxResult | None:
        """Pick up a transaction signed earlier (by this or a previous process): its receipt if one
        of ``tx_hashes`` is mined; else wait for it, sending ``raw_tx`` again (same nonce) if the
        node has forgotten it. None when another transaction took the nonce (it can never be mined)."""
        hashes = [HexBytes(h) for h in tx_hashes]
        for h in hashes:
            receipt = self._receipt(h)
            if receipt is not None:
                return self._checked(receipt, base, function, hashes)
        signed = _Signed(HexBytes(raw_tx), hashes[-1])
        if not any(self._known(h) for h in hashes):
            if self._nonce_used(nonce):
                return None
            with self.nonces.lock:
                try:
                    self._send_raw(signed, function)
                except _NonceConflict:
                    return None
                self.nonces.consumed(nonce, signed.hash)
        return self._await(base, signed, nonce, fees, function, on_signed, hashes[:-1])

    def _sign(self, base: dict[str, Any], nonce: int, fees: dict[str, int]) -> Any:
        return self.account.sign_transaction({**base, "nonce": nonce, **fees})

    def _sign_and_send_new(self, base: dict[str, Any], function: str,
                           on_signed: OnSigned | None = None) -> tuple[Any, int, dict[str, int]]:
        last_exc: Exception | None = None
        for _ in range(self.policy.nonce_retries + 1):
            pending = self.rpc(
                lambda: self.w3.eth.get_transaction_count(self.address, "pending"), "eth_getTransactionCount"
            )
            nonce = self.nonces.next_nonce(pending, self._known)
            fees = self.fee_fields()
            signed = self._sign(base, nonce, fees)
            if on_signed is not None:
                on_signed(base, signed, nonce, fees)
            try:
                self._send_raw(signed, function)
            except _NonceConflict as exc:
                last_exc = exc
                log.info("%s: nonce %d conflicts (%s); resyncing", function, nonce, exc)
                self.stats["nonce_resyncs"] += 1
                self.nonces.reset()
                continue
            self.nonces.consumed(nonce, signed.hash)
            self.stats["sent"] += 1
            return signed, nonce, fees
        raise NonceError(f"{function}: could not find a free nonce: {last_exc}")

    def _send_raw(self, signed: Any, function: str) -> None:
        """Send signed bytes; resending the same bytes is harmless (idempotent)."""
        raw = signed.raw_transaction
        try:
            self.rpc(lambda: self.w3.eth.send_raw_transaction(raw), f"send {function}")
        except Web3RPCError as exc:
            msg = _rpc_message(exc)
            if "already known" in msg or "already imported" in msg:
                return  # ours, already in the pool
            if "nonce too low" in msg or "replacement transaction underpriced" in msg or "nonce has already been used" in msg:
                if self._known(signed.hash):
                    return  # the rejected nonce carries our own transaction
                raise _NonceConflict(msg) from exc
            if "fee" in msg and "base fee" in msg:
                raise FeeCapExceededError(f"{function}: {msg}") from exc
            raise ChainError(f"{function}: transaction rejected: {msg}") from exc

    def _known(self, tx_hash: HexBytes) -> bool:
        try:
            self.rpc(lambda: self.w3.eth.get_transaction(tx_hash), "eth_getTransactionByHash")
            return True
        except TransactionNotFound:
            return False

    def _receipt(self, tx_hash: HexBytes) -> Any | None:
        try:
            return self.rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash), "eth_getTransactionReceipt")
        except TransactionNotFound:
            return None

    def _await(
        self, base: dict[str, Any], signed: Any, nonce: int, fees: dict[str, int], function: str,
        on_signed: OnSigned | None = None, earlier: Sequence[HexBytes] = (),
    ) -> TxResult:
        p = self.policy
        candidates = [*earlier, signed.hash]
        stage_timeout = p.receipt_timeout_s
        bumps = 0
        while True:
            deadline = time.monotonic() + stage_timeout
            next_presence_check = time.monotonic() + p.rebroadcast_after_s
            while time.monotonic() < deadline:
                reorged = False
                for h in candidates:
                    receipt = self._receipt(h)
                    if receipt is not None:
                        confirmed = self._confirmed(receipt, function)
                        if confirmed is not None:
                            return self._checked(confirmed, base, function, candidates)
                        reorged = True
                        break
                if reorged:
                    log.warning("%s: %s was reorganised out of the chain; rebroadcasting", function,
                                signed.hash.to_0x_hex())
                    self.stats["reorged"] += 1
                    with self.nonces.lock:
                        try:
                            self._send_raw(signed, function)
                        except _NonceConflict:
                            pass  # re-mined meanwhile: found on the next pass
                    deadline = time.monotonic() + stage_timeout
                    continue
                if time.monotonic() >= next_presence_check:
                    next_presence_check = time.monotonic() + p.rebroadcast_after_s
                    if not any(self._known(h) for h in candidates):
                        if self._nonce_used(nonce):
                            break  # something else took the nonce; decided below
                        log.info("%s: %s vanished from the pool; rebroadcasting", function, signed.hash.to_0x_hex())
                        self.stats["rebroadcasts"] += 1
                        with self.nonces.lock:
                            try:
                                self._send_raw(signed, function)
                            except _NonceConflict:
                                pass
                self._sleep(p.receipt_poll_s)
            # Not mined in time. If the nonce has been used by something else, stop.
            if self._nonce_used(nonce):
                for h in candidates:
                    receipt = self._receipt(h)
                    if receipt is not None:
                        return self._checked(receipt, base, function, candidates)
                self.nonces.reset()
                raise NonceError(f"{function}: nonce {nonce} was used by another transaction")
            new_fees = bumped_fees(fees, p) if bumps < p.max_fee_bumps else None
            if new_fees is None:
                self.nonces.reset()
                raise TransactionTimeoutError(
                    f"{function}: {signed.hash.to_0x_hex()} not mined after {bumps} fee bumps"
                )
            bumps += 1
            self.stats["fee_bumps"] += 1
            fees = new_fees
            with self.nonces.lock:
                signed = self._sign(base, nonce, fees)
                if on_signed is not None:
                    on_signed(base, signed, nonce, fees)
                log.info("%s: replacing nonce %d with fees %s", function, nonce, fees)
                try:
                    self._send_raw(signed, function)
                except _NonceConflict:
                    pass  # the original got mined meanwhile: found by the loop above
            candidates.append(signed.hash)

    def _confirmed(self, receipt: Any, function: str) -> Any | None:
        """The receipt once ``policy.confirmations`` blocks are on top of it and its block is still
        canonical; None when the transaction was reorganised out (and is not mined again yet)."""
        p = self.policy
        if p.confirmations <= 0:
            return receipt
        deadline = time.monotonic() + p.receipt_timeout_s
        while True:
            current = self._receipt(receipt["transactionHash"])
            if current is None:
                # A null receipt after a real one is a reorg only if the receipt's block is gone
                # from the canonical chain; a lagging backend (no such block yet) is waited out.
                if self._block_lags(int(receipt["blockNumber"])):
                    self.stats["rpc_lagging"] = self.stats.get("rpc_lagging", 0) + 1
                    if time.monotonic() > deadline:
                        raise TransactionTimeoutError(f"{function}: the RPC keeps lagging behind block "
                                                      f"{int(receipt['blockNumber'])}")
                    self._sleep(p.receipt_poll_s)
                    continue
                return None
            receipt = current  # re-mined in another block: confirmations count from there
            number = int(receipt["blockNumber"])
            head = int(self.rpc(lambda: self.w3.eth.block_number, "eth_blockNumber"))
            if head >= number + p.confirmations:
                block = self._block_or_none(number)
                if block is None:  # lagging backend: ask again
                    self._sleep(p.receipt_poll_s)
                    continue
                if bytes(block["hash"]) == bytes(receipt["blockHash"]):
                    return receipt
                return None
            if time.monotonic() > deadline:
                raise TransactionTimeoutError(
                    f"{function}: {receipt['transactionHash'].to_0x_hex()} mined in block {number} but not "
                    f"{p.confirmations} blocks deep within {p.receipt_timeout_s} s"
                )
            self._sleep(p.receipt_poll_s)

    def _block_or_none(self, number: int) -> Any | None:
        try:
            return self.rpc(lambda: self.w3.eth.get_block(number), "eth_getBlockByNumber") or None
        except BlockNotFound:
            return None

    def _block_lags(self, number: int) -> bool:
        """Whether the RPC answers as if block ``number`` (which it reported before) did not exist yet."""
        head = int(self.rpc(lambda: self.w3.eth.block_number, "eth_blockNumber"))
        return head < number or self._block_or_none(number) is None

    def _nonce_used(self, nonce: int) -> bool:
        mined = self.rpc(
            lambda: self.w3.eth.get_transaction_count(self.address, "latest"), "eth_getTransactionCount"
        )
        return int(mined) > nonce

    def _checked(self, receipt: Any, base: dict[str, Any], function: str, candidates: Sequence[HexBytes] = ()) -> TxResult:
        tx_hash = receipt["transactionHash"].to_0x_hex()
        if receipt["status"] != 1:
            self.stats["reverted"] += 1
            raise self._explain_failure(receipt, base, function, tx_hash)
        return TxResult(
            tx_hash=tx_hash,
            receipt=receipt,
            gas_used=int(receipt["gasUsed"]),
            effective_gas_price_wei=int(receipt.get("effectiveGasPrice", 0) or 0),
            block_number=int(receipt["blockNumber"]),
            replaced=tuple(h.to_0x_hex() for h in candidates if h.to_0x_hex() != tx_hash),
        )

    def _explain_failure(self, receipt: Any, base: dict[str, Any], function: str, tx_hash: str) -> TransactionRevertedError:
        """Replay the failed transaction at its block's parent to recover the revert data."""
        call = {k: base[k] for k in ("from", "to", "data", "value", "gas") if k in base}
        block = max(0, int(receipt["blockNumber"]) - 1)
        try:
            self.w3.eth.call(call, block_identifier=block)
        except ContractLogicError as exc:
            err = self._revert_from_exception(exc, function)
            return TransactionRevertedError(
                err.error_name, err.error_args, data=err.data, function=function, tx_hash=tx_hash, receipt=receipt
            )
        except Exception as exc:  # replay itself failed; report what we know
            log.debug("replay of %s failed: %s", tx_hash, exc)
        hint = "out of gas" if int(receipt["gasUsed"]) >= int(base.get("gas", 0) or 0) else "not reproduced by replay"
        return TransactionRevertedError("", {"reason": hint}, function=function, tx_hash=tx_hash, receipt=receipt)


class _NonceConflict(ChainError):
    pass
