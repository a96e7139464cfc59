"""The chain as actions see it.

:class:`MarketView` reads: a connection with retries, the deployment of this chain, the market,
its payment and stake tokens, and the account that acts (for planning: the browser wallet's
address; nothing is signed). :class:`ActionContext` adds what executing needs: a signing
:class:`~oracle.chain.tx.TransactionSender` and the journal of this chain and market.
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from oracle.actions.journal import Journal, journal_path
from oracle.actions.tokens import TokenMeta, token_meta
from oracle.chain.contract import BoundContract, connect
from oracle.chain.tx import TransactionSender, TxPolicy, retry_rpc
from oracle.deployment import Deployment, load_deployment
from oracle.errors import ChainError, ConfigError


def _unreachable(rpc: str, exc: BaseException) -> ChainError:
    text = str(exc).lower()
    why = ("connection refused" if "refused" in text else "timed out" if "timed out" in text or
           "timeout" in text else "name not resolved" if "resolve" in text or "name or service" in text
           else str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    return ChainError(f"cannot reach the RPC at {rpc} ({why}); is the chain running? "
                      "(`gpurent chain start` starts a local one)")


class MarketView:
    """Read access to one chain's gpurent deployment, on behalf of ``account``."""

    def __init__(self, sender: TransactionSender, deployment: Deployment | None, *, account: str | None = None,
                 rpc_url: str = "") -> None:
        self.sender = sender
        self.w3: Web3 = sender.w3
        self.rpc_url = rpc_url
        self.deployment = deployment
        self.account = Web3.to_checksum_address(account) if account else sender.address
        self.chain_id = int(sender.chain_id)
        self._client_version: str | None = None
        self._tokens: dict[str, TokenMeta] = {}
        if deployment is not None:
            self._bind(deployment)

    def _bind(self, deployment: Deployment) -> None:
        from oracle.chain.artifacts import get_artifact, load_abi
        from oracle.chain.client import MarketClient

        if len(self.w3.eth.get_code(deployment.market)) == 0:
            raise ChainError(
                f"no contract at the market address {deployment.market} on chain {self.chain_id}: "
                "the deployment file is stale (a restarted local chain?); run `gpurent deploy` again")
        self.market_abi = load_abi("GpuRentMarket")
        self.token_abi = get_artifact("TestStablecoin").abi  # OpenZeppelin ERC-20: its custom errors decode
        self.market = BoundContract(self.sender, deployment.market, self.market_abi, extra_error_abis=[self.token_abi])
        self.client = MarketClient(self.sender, deployment.market, self.market_abi)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def connect(cls, rpc_url: str, *, deployments: str | os.PathLike[str] | None = None, private_key: bytes | None = None,
                account: str | None = None, need_deployment: bool = True, rpc_retries: int = 1,
                policy: TxPolicy | None = None, quiet: bool = True) -> "MarketView":
        """Connect to ``rpc_url``, load this chain's deployment (unless ``need_deployment=False``)
        and sign with ``private_key`` if given (an :class:`ActionContext` then)."""
        w3 = connect(rpc_url, timeout_s=10.0)
        policy = policy or TxPolicy(rpc_retries=rpc_retries, backoff_base_s=0.2, backoff_max_s=1.0)
        if quiet and not os.environ.get("GPURENT_DEBUG"):
            logging.getLogger("oracle.chain").setLevel(logging.ERROR)  # retries are not news to a person
        try:
            chain_id = int(retry_rpc(lambda: w3.eth.chain_id, f"eth_chainId at {rpc_url}", retries=rpc_retries,
                                     backoff_base_s=0.2, backoff_max_s=1.0))
        except Exception as exc:  # noqa: BLE001 - whatever it was, the RPC cannot be used
            raise _unreachable(rpc_url, exc) from None
        signer = Account.from_key(private_key) if private_key is not None else Account.create()
        sender = TransactionSender(w3, signer, policy=policy)
        sender._chain_id = chain_id
        deployment = load_deployment(chain_id, deployments) if need_deployment else None
        if private_key is not None:
            return ActionContext(sender, deployment, rpc_url=rpc_url)
        return cls(sender, deployment, account=account, rpc_url=rpc_url)

    # -- facts -----------------------------------------------------------------------------------
    @property
    def is_anvil(self) -> bool:
        if self._client_version is None:
            try:
                self._client_version = str(self.w3.client_version)
            except Exception:  # noqa: BLE001 - a node that does not say
                self._client_version = ""
        return self._client_version.lower().startswith("anvil")

    def require_deployment(self) -> Deployment:
        if self.deployment is None:
            raise ConfigError("this needs a gpurent deployment on the chain (`gpurent deploy`)")
        return self.deployment

    def token(self, address: str) -> TokenMeta:
        """Symbol and decimals of ``address`` (cached; any common metadata shape)."""
        key = address.lower()
        if key not in self._tokens:
            self._tokens[key] = token_meta(self.w3, address)
        return self._tokens[key]

    @property
    def payment_token(self) -> TokenMeta:
        return self.token(self.require_deployment().payment_token)

    @property
    def stake_token(self) -> TokenMeta:
        return self.token(self.require_deployment().stake_token)

    def contract(self, address: str, abi: list[dict[str, Any]]) -> BoundContract:
        return BoundContract(self.sender, address, abi)

    def has_function(self, name: str) -> bool:
        return self.market.has_function(name)

    def build(self, name: str, *args: Any) -> str:
        """Calldata of ``market.name(*args)``."""
        data = self.market.build(name, *args)["data"]
        return data if isinstance(data, str) else "0x" + bytes(data).hex()


class ActionContext(MarketView):
    """A view that can act: its account signs (``sender``), and the journal records every
    transaction before it is sent (under ``journal_home``, default ``$GPURENT_HOME``)."""

    journal_home: Path | None = None

    @property
    def address(self) -> str:
        return self.sender.address

    @cached_property
    def journal(self) -> Journal | None:
        if os.environ.get("GPURENT_NO_JOURNAL"):
            return None
        market = self.deployment.market if self.deployment is not None else None
        try:
            genesis = self.w3.eth.get_block(0)["hash"].to_0x_hex()
        except Exception:  # noqa: BLE001 - a node without block 0 (pruned): no genesis check
            genesis = None
        return Journal(journal_path(self.chain_id, market, self.journal_home), genesis=genesis)


def context_from_sender(sender: TransactionSender, deployment: Deployment | None, *, rpc_url: str = "",
                        journal_home: Path | None = None) -> ActionContext:
    """An :class:`ActionContext` around an existing sender (tests, the demo, services)."""
    ctx = ActionContext(sender, deployment, rpc_url=rpc_url)
    ctx.journal_home = journal_home
    return ctx
