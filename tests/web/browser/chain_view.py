"""The chain as the browser tests read it: web3 straight against anvil, independent of the
server under test (structs as dicts by their ABI names; reports decoded from settlement calldata)."""

from __future__ import annotations

from typing import Any

from oracle.chain.artifacts import load_abi
from oracle.chain.settlements import get_settlements


def _named(abi_outputs: list[dict[str, Any]], value: Any) -> Any:
    (output,) = abi_outputs
    return {c["name"]: v for c, v in zip(output["components"], value)} if output.get("components") else value


class ChainView:
    def __init__(self, rpc_url: str, market: str, token: str) -> None:
        from web3 import Web3

        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.market = self.w3.eth.contract(address=market, abi=load_abi("GpuRentMarket"))
        self.token = self.w3.eth.contract(address=token, abi=load_abi("TestStablecoin"))
        self._outputs = {f["name"]: f["outputs"] for f in self.market.abi if f.get("type") == "function"}

    def call(self, name: str, *args: Any) -> Any:
        return _named(self._outputs[name], getattr(self.market.functions, name)(*args).call())

    def rental(self, rental_id: int) -> dict[str, Any]:
        return self.call("getRental", rental_id)

    def offer(self, offer_id: int) -> dict[str, Any]:
        return self.call("getOffer", offer_id)

    def stake(self, provider: str) -> dict[str, Any]:
        return self.call("stakeOf", provider)

    def withdrawable(self, account: str) -> int:
        return self.market.functions.withdrawable(account, self.token.address).call()

    def balance(self, account: str) -> int:
        return self.token.functions.balanceOf(account).call()

    def settlements(self, rental_id: int) -> list[Any]:
        return get_settlements(self.market, 0, rental_id=rental_id)

    def paid_after(self, rental_id: int) -> dict[int, int]:
        """sequence -> cumulative paid once that report settled."""
        total, out = 0, {}
        for s in self.settlements(rental_id):
            total += s.payment
            out[s.sequence] = total
        return out

    def report(self, rental_id: int, tx_hash: Any) -> dict[str, Any]:
        """The rental's usage report in a settle/settleBatch transaction's input."""
        tx = self.w3.eth.get_transaction(tx_hash)
        _, args = self.market.decode_function_input(tx["input"])
        for report in args.get("reports") or [args.get("report")]:
            fields = dict(report) if isinstance(report, dict) else None
            if fields is None:
                names = [c["name"] for c in next(f for f in self.market.abi if f.get("name") == "settle")["inputs"][0]["components"]]
                fields = dict(zip(names, report))
            if fields["rentalId"] == rental_id:
                return fields
        raise AssertionError(f"no report of rental {rental_id} in {tx_hash!r}")

    def events(self, name: str, **filters: Any) -> list[Any]:
        return list(getattr(self.market.events, name).get_logs(from_block=0, argument_filters=filters or None))
