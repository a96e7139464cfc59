"""A contract bound to a ``TransactionSender``: views with retries, writes as checked transactions."""

from __future__ import annotations

from typing import Any, Sequence

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from oracle.chain.errors import ErrorDecoder, TransactionRevertedError
from oracle.chain.tx import TransactionSender, TxPolicy, TxResult
from oracle.errors import ChainError
from oracle.redact import register_secret_url


def connect(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    """A Web3 over HTTP with a request timeout and web3's own retries off (we retry ourselves).

    The URL's secret parts (an API key in the path, query or userinfo) are registered with
    :mod:`oracle.redact`, so no log line, status or error message shows them.
    """
    register_secret_url(rpc_url)
    provider = Web3.HTTPProvider(
        rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
    )
    return Web3(provider)


def account_from_key(private_key: bytes | str) -> LocalAccount:
    return Account.from_key(private_key)


class BoundContract:
    """One deployed contract: ``call(name, *args)`` for views, ``transact(name, *args)`` for writes."""

    def __init__(
        self,
        sender: TransactionSender,
        address: str,
        abi: Sequence[dict[str, Any]],
        *,
        extra_error_abis: Sequence[Sequence[dict[str, Any]]] = (),
    ) -> None:
        self.sender = sender
        self.w3 = sender.w3
        self.address = Web3.to_checksum_address(address)
        self.abi = list(abi)
        self.contract: Contract = self.w3.eth.contract(address=self.address, abi=self.abi)
        self.decoder = ErrorDecoder.from_abis(self.abi, *extra_error_abis)
        # reverts of this contract decode against its errors
        self.sender.decoder.errors.update(self.decoder.errors)

    def has_function(self, name: str) -> bool:
        return any(i.get("type") == "function" and i.get("name") == name for i in self.abi)

    def call(self, name: str, *args: Any, block: Any = "latest") -> Any:
        fn = self.contract.get_function_by_name(name)(*args)
        try:
            return self.sender.rpc(lambda: fn.call({"from": self.sender.address}, block_identifier=block), name)
        except TransactionRevertedError:
            raise
        except Exception as exc:
            from web3.exceptions import ContractLogicError

            if isinstance(exc, ContractLogicError):
                raise self.sender._revert_from_exception(exc, name) from exc
            raise

    def build(self, name: str, *args: Any, value: int = 0) -> dict[str, Any]:
        fn = self.contract.get_function_by_name(name)(*args)
        return {"to": self.address, "data": fn._encode_transaction_data(), "value": value}

    def transact(self, name: str, *args: Any, value: int = 0, gas: int | None = None) -> TxResult:
        tx = self.build(name, *args, value=value)
        if gas is not None:
            tx["gas"] = gas
        result = self.sender.send(tx, function=name)
        assert isinstance(result, TxResult)
        return TxResult(
            tx_hash=result.tx_hash,
            receipt=result.receipt,
            gas_used=result.gas_used,
            effective_gas_price_wei=result.effective_gas_price_wei,
            block_number=result.block_number,
            events=self.decode_events(result.receipt),
            replaced=result.replaced,
        )

    def decode_events(self, receipt: Any) -> dict[str, list[Any]]:
        """Events this contract emitted in ``receipt``, by name (decoded args)."""
        out: dict[str, list[Any]] = {}
        by_topic = {}
        for item in self.abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                ev = self.contract.events[item["name"]]()
                by_topic[bytes(Web3.keccak(text=_event_signature(item)))] = ev
        for raw in receipt["logs"]:
            if Web3.to_checksum_address(raw["address"]) != self.address or not raw["topics"]:
                continue
            ev = by_topic.get(bytes(raw["topics"][0]))
            if ev is None:
                continue
            decoded = ev.process_log(raw)
            out.setdefault(decoded["event"], []).append(decoded["args"])
        return out


def _event_signature(item: dict[str, Any]) -> str:
    from oracle.chain.errors import _abi_type

    return f"{item['name']}({','.join(_abi_type(p) for p in item.get('inputs', []))})"


def deploy(
    sender: TransactionSender,
    abi: Sequence[dict[str, Any]],
    bytecode: str,
    *args: Any,
    gas: int | None = None,
) -> tuple[str, TxResult]:
    """Deploy a contract; returns (address, TxResult)."""
    factory = sender.w3.eth.contract(abi=list(abi), bytecode=bytecode)
    data = factory.constructor(*args).data_in_transaction
    tx: dict[str, Any] = {"data": data, "value": 0}
    if gas is not None:
        tx["gas"] = gas
    sender.decoder.errors.update(ErrorDecoder.from_abis(list(abi)).errors)
    result = sender.send(tx, function="constructor")
    assert isinstance(result, TxResult)
    address = result.receipt.get("contractAddress")
    if not address:
        raise ChainError(f"deployment {result.tx_hash} created no contract")
    return Web3.to_checksum_address(address), result


def make_sender(rpc_url: str, private_key: bytes | str, policy: TxPolicy | None = None) -> TransactionSender:
    return TransactionSender(connect(rpc_url), account_from_key(private_key), policy=policy)
