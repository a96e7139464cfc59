"""The demo's chain steps, one function each, through :mod:`oracle.actions` exactly as the CLI
runs them (the same plans, journal and sender; no CLI output is parsed). New steps (a workload
container, a slash shown on chain) go here as functions of their own, called from
:mod:`oracle.demo.run`; each records its transactions with ``chain.note``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from oracle.actions import offers, rentals, staking, views
from oracle.actions.context import ActionContext, MarketView, context_from_sender
from oracle.actions.deploy import deploy_market
from oracle.actions.results import TxDone
from oracle.actions.tokens import balance_of
from oracle.actions.usage import rental_status
from oracle.chain.client import OfferTerms
from oracle.deployment import DAY_S, Deployment, MarketParamsConfig, load_deployment, save_deployment
from oracle.demo.base import DEPLOYER, GPU_MODEL, PROVIDER, RENTER, DemoError, DemoOptions
from oracle.errors import GpurentError
from oracle.units import parse_amount


class DemoChain:
    """The demo's view of its chain: an action context per anvil dev account (journal under the
    demo's state directory), and a record of every transaction by step label."""

    def __init__(self, rpc: str, deployments: Path, record: Callable[[str, str], None],
                 journal_home: Path | None = None) -> None:
        from oracle.chain.contract import connect

        self.rpc = rpc
        self.deployments = deployments
        self.record = record
        self.journal_home = journal_home or deployments.parent
        self.w3 = connect(rpc)
        self._deployment: Deployment | None = None
        self._contexts: dict[int, ActionContext] = {}

    @property
    def deployment(self) -> Deployment:
        if self._deployment is None:
            self._deployment = load_deployment(int(self.w3.eth.chain_id), self.deployments)
        return self._deployment

    def sender(self, account: int) -> Any:
        from eth_account import Account

        from oracle.chain.tx import TransactionSender, TxPolicy
        from oracle.localchain import dev_key

        return TransactionSender(self.w3, Account.from_key(dev_key(account)),
                                 policy=TxPolicy(rpc_retries=1, backoff_base_s=0.2, backoff_max_s=1.0))

    def ctx(self, account: int) -> ActionContext:
        if account not in self._contexts:
            self._contexts[account] = context_from_sender(self.sender(account), self.deployment, rpc_url=self.rpc,
                                                          journal_home=self.journal_home)
        return self._contexts[account]

    @property
    def view(self) -> MarketView:
        return self.ctx(DEPLOYER)

    def note(self, label: str, done: TxDone, approve_tx: str | None = None) -> None:
        self.record(label, done.tx_hash)
        if approve_tx:
            self.record(f"{label} (approve)", approve_tx)

    def units(self, text: str, what: str) -> int:
        return parse_amount(text, self.view.payment_token.decimals, what)


def run_step(title: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One step; a chain error becomes a DemoError naming the step."""
    try:
        return fn(*args, **kwargs)
    except GpurentError as exc:
        if isinstance(exc, DemoError):
            raise
        raise DemoError(f"{title} failed: {exc}") from None


def deploy(chain: DemoChain, signers: list[str], threshold: int) -> dict[str, Any]:
    """What `gpurent deploy --dev-account 0 --signer ... --reputation-prior 0.01` does on a local anvil."""
    from oracle.localchain import dev_accounts

    sender = chain.sender(DEPLOYER)
    # A small reputation prior (0.01 tUSD of fees) so the demo's one short rental moves the
    # score; a real market keeps the default (docs/economics.md).
    params = MarketParamsConfig(treasury=sender.address, protocol_fee_bps=100, start_timeout_s=3600,
                                silence_timeout_s=3600, settlement_grace_s=DAY_S, unbonding_delay_s=32 * DAY_S,
                                max_rental_duration_s=30 * DAY_S, reputation_prior=10_000)
    ctx = context_from_sender(sender, None, rpc_url=chain.rpc, journal_home=chain.journal_home)
    deployment = deploy_market(sender, params=params, min_stake_per_gpu=100 * 10**6, signers=signers,
                               threshold=threshold, mint_test_tokens_to=dev_accounts(), timelock_delay_s=60,
                               journal=ctx.journal, on_deployed=lambda d: save_deployment(d, chain.deployments))
    for label, tx in deployment.transactions.items():
        chain.record(f"deploy {label}", tx)
    return deployment.to_json()


def stake(chain: DemoChain, amount: str) -> staking.Staked:
    staked = staking.stake(chain.ctx(PROVIDER), chain.units(amount, "stake"))
    chain.note("provider stake", staked.done, staked.approve_tx)
    return staked


def list_offer(chain: DemoChain, options: DemoOptions, agent: str) -> views.OfferView:
    from oracle.metering import StaticGridIntensity

    terms = OfferTerms(gpu_model=GPU_MODEL, gpu_count=1, payment_token=chain.deployment.payment_token,
                       price_per_gpu_hour=chain.units(options.price_per_gpu_hour, "price per GPU-hour"),
                       price_per_kwh=chain.units(options.price_per_kwh, "price per kWh"), region=options.region,
                       grid_intensity_g_per_kwh=int(StaticGridIntensity().g_per_kwh(options.region)),
                       max_duration_seconds=86_400, min_uptime_bps=9_500, agent=agent)
    created = offers.create_offer(chain.ctx(PROVIDER), terms)
    chain.note("provider offer", created.done)
    return created.offer


def open_rental(chain: DemoChain, offer_id: int, budget: str) -> rentals.RentalOpened:
    opened = rentals.open_rental(chain.ctx(RENTER), offer_id, chain.units(budget, "budget"))
    chain.note("rent open", opened.done, opened.approve_tx)
    return opened


def start_rental(chain: DemoChain, rental_id: int) -> int:
    started = rentals.start_rental(chain.ctx(PROVIDER), rental_id)
    chain.note("provider start", started.done)
    return started.started_at


def end_rental(chain: DemoChain, rental_id: int) -> None:
    chain.note("rent end", rentals.end_rental(chain.ctx(RENTER), rental_id).done)


def finalize(chain: DemoChain, rental_id: int) -> rentals.RentalFinalized:
    finalized = rentals.finalize_rental(chain.ctx(PROVIDER), rental_id)
    chain.note("provider finalize", finalized.done)
    return finalized


def withdraw_both(chain: DemoChain) -> tuple[rentals.Withdrawn, rentals.Withdrawn]:
    provider = rentals.withdraw(chain.ctx(PROVIDER))
    chain.note("provider withdraw", provider.done)
    renter = rentals.withdraw(chain.ctx(RENTER))
    chain.note("rent withdraw", renter.done)
    return provider, renter


def account_state(chain: DemoChain, address: str) -> dict[str, Any]:
    """An account's wallet balance in the payment token and its provider reputation."""
    return {"wallet_balance": balance_of(chain.w3, chain.deployment.payment_token, address),
            "reputation": views.reputation(chain.view, address).as_dict()}


def status(chain: DemoChain, rental_id: int) -> dict[str, Any]:
    """What `gpurent rent status` shows."""
    return rental_status(chain.view, rental_id)
