"""What every chain-facing ``gpurent`` subcommand shares: options, wallets, the chain session,
amounts in token units, ``--json`` output, progress, and errors a person can act on.

Exit codes: 0 done; 1 the operation failed (a transaction reverted, the RPC is unreachable, a
node refused); 2 the command or its configuration is wrong (bad address, missing deployment,
unreadable keystore, wrong password). No traceback is printed for any error gpurent raises on
purpose; ``GPURENT_DEBUG=1`` shows it anyway.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import click

from oracle.errors import ConfigError, GpurentError, KeystoreError
from oracle.redact import redact

RPC_ENV = "GPURENT_RPC_URL"
KEYSTORE_ENV = "GPURENT_KEYSTORE"
PASSWORD_ENV = "GPURENT_PASSWORD"
DEV_ACCOUNT_ENV = "GPURENT_DEV_ACCOUNT"
DEFAULT_RPC = "http://127.0.0.1:8545"

STATUS_NAMES = ["None", "Open", "Active", "Ended", "Cancelled", "Finalized"]
END_REASONS = ["None", "ByRenter", "ByProvider", "BudgetExhausted", "MaxDuration", "Silence"]


# -- errors -------------------------------------------------------------------------------------

class UsageProblem(click.ClickException):
    """The command or its configuration is wrong: exit 2."""

    exit_code = 2


class OperationFailed(click.ClickException):
    """The operation was tried and failed: exit 1."""

    exit_code = 1


def _status_name(code: Any) -> str:
    try:
        return STATUS_NAMES[int(code)]
    except (ValueError, IndexError, TypeError):
        return str(code)


# Custom errors of the market and of OpenZeppelin's ERC-20, as sentences with the next step.
_REVERT_HINTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "ERC20InsufficientAllowance": lambda a: (
        f"token allowance too low: {a.get('spender')} may spend {a.get('allowance')} units of yours, "
        f"this needs {a.get('needed')}; approve it (gpurent approves automatically unless --no-approve)"),
    "ERC20InsufficientBalance": lambda a: (
        f"token balance too low: {a.get('sender')} holds {a.get('balance')} units, this needs {a.get('needed')}"),
    "ProviderStaking_InsufficientStake": lambda a: (
        f"stake too low: {a.get('provider')} has {a.get('active')} active, the listed GPUs and the collateral "
        f"locked for running rentals need {a.get('required')}; add stake with `gpurent provider stake`"),
    "RentalEscrow_CollateralUnavailable": lambda a: (
        f"rental {a.get('rentalId')} needs {a.get('collateral')} of free stake as collateral, you have "
        f"{a.get('free')} free; add stake with `gpurent provider stake`"),
    "OfferBook_UnknownGpuModel": lambda a: (
        f"GPU model {bytes(a.get('gpuModel') or b'').rstrip(bytes(1)).decode(errors='replace')!r} is not in the "
        f"market's GPU model table (governance adds models with `gpurent governance set-gpu-model`)"),
    "OfferBook_StakeTokenNotAllowed": lambda a: (
        f"your stake token {a.get('token')} is no longer allowed: it cannot back new offers or rentals"),
    "ProviderStaking_FaultNotSlashable": lambda a: (
        f"fault kind {a.get('kind')} (busy at idle power) is the renter's workload: a usage flag, never slashed"),
    "ProviderStaking_NothingToSlash": lambda a: f"rental {a.get('rentalId')} has no collateral left to slash",
    "ProviderStaking_SlashWindowUsed": lambda a: (
        f"fault kind {a.get('kind')} already slashed rental {a.get('rentalId')} in window {a.get('window')}"),
    "ProviderStaking_TokenNotAllowed": lambda a: f"{a.get('token')} is not an allowed stake token on this market",
    "ProviderStaking_NotUnbonded": lambda a: (
        f"nothing unbonded yet: {a.get('unbonding')} units unbonding until unix time {a.get('releaseAt')}"),
    "ProviderStaking_StakeTokenMismatch": lambda a: (
        f"you already stake {a.get('current')}; unstake it fully before staking {a.get('token')}"),
    "OfferBook_UnknownOffer": lambda a: f"there is no offer {a.get('offerId')} on this market (`gpurent market list`)",
    "OfferBook_NotProvider": lambda a: f"offer {a.get('offerId')} belongs to another provider, not {a.get('caller')}",
    "OfferBook_OfferInactive": lambda a: f"offer {a.get('offerId')} has been withdrawn",
    "OfferBook_PaymentTokenNotAllowed": lambda a: f"{a.get('token')} is not an allowed payment token",
    "OfferBook_PaymentTokenChanged": lambda a: "an offer's payment token cannot change; withdraw it and create a new one",
    "OfferBook_InvalidTerms": lambda a: f"invalid offer terms: {a.get('field')}",
    "RentalEscrow_UnknownRental": lambda a: f"there is no rental {a.get('rentalId')} on this market",
    "RentalEscrow_WrongStatus": lambda a: (
        f"rental {a.get('rentalId')} is {_status_name(a.get('status'))}, which does not allow this"),
    "RentalEscrow_Unauthorized": lambda a: f"{a.get('caller')} may not do this to rental {a.get('rentalId')}",
    "RentalEscrow_OfferVersionMismatch": lambda a: (
        f"offer {a.get('offerId')} changed (version {a.get('current')}, you saw {a.get('expected')}); "
        "check its new terms with `gpurent market list` and retry"),
    "RentalEscrow_InvalidGpuCount": lambda a: f"asked for {a.get('gpuCount')} GPUs, the offer has {a.get('offered')}",
    "RentalEscrow_InvalidAmount": lambda a: f"invalid amount {a.get('amount')} (zero, or the budget would exceed uint96)",
    "RentalEscrow_StartDeadlinePassed": lambda a: (
        f"rental {a.get('rentalId')} passed its start deadline (unix {a.get('deadline')}); the renter can cancel it"),
    "RentalEscrow_TooEarly": lambda a: f"too early for rental {a.get('rentalId')}: possible after unix time {a.get('until')}",
    "RentalEscrow_NothingToWithdraw": lambda a: f"nothing to withdraw for {a.get('account')} in {a.get('token')}",
    "RentalEscrow_TransferShortfall": lambda a: "the token delivered less than asked (fee-on-transfer tokens are refused)",
    "UsageSettlement_StaleSequence": lambda a: (
        f"rental {a.get('rentalId')} already settled sequence {a.get('lastSequence')}; this report "
        f"({a.get('sequence')}) is not newer"),
    "UsageSettlement_NotSettleable": lambda a: (
        f"rental {a.get('rentalId')} is {_status_name(a.get('status'))} and can no longer settle"),
    "OracleQuorum_NotEnoughSignatures": lambda a: f"not enough oracle signatures (threshold {a.get('threshold')})",
    "OracleQuorum_UnknownSigner": lambda a: f"signature {a.get('index')} is from {a.get('signer')}, not a current oracle signer",
    "OracleQuorum_WrongSignerSetVersion": lambda a: (
        f"report made for signer set {a.get('reportVersion')}, the market's is {a.get('current')}"),
    "AccessControlUnauthorizedAccount": lambda a: f"{a.get('account')} lacks the role this needs (governance only)",
}


def explain_error(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit code) for an error a command raised."""
    from oracle.chain.errors import RpcUnavailableError, TransactionRevertedError
    from oracle.deployment import DeploymentError

    if isinstance(exc, TransactionRevertedError):
        hint = _REVERT_HINTS.get(exc.error_name)
        what = exc.function or "transaction"
        if hint is not None:
            message = f"{what}: {hint(exc.error_args)}"
        elif exc.error_name:
            args = ", ".join(f"{k}={v}" for k, v in exc.error_args.items())
            message = f"{what} reverted: {exc.error_name}({args})"
        else:
            message = f"{what} reverted ({exc.error_args.get('reason') or exc.error_args.get('message') or 'no reason given'})"
        if exc.tx_hash:
            message += f" [tx {exc.tx_hash}]"
        return message, 1
    if isinstance(exc, RpcUnavailableError):
        return f"{exc}. Is the chain running? (`gpurent chain start` starts a local one)", 1
    if isinstance(exc, (ConfigError, KeystoreError, DeploymentError)):
        return str(exc), 2
    if isinstance(exc, GpurentError):
        return str(exc), 1
    return f"{type(exc).__name__}: {exc}", 1


def _web3_error(exc: BaseException) -> tuple[str, int] | None:
    """Errors web3 raises itself on bad input (before our layer can wrap them)."""
    try:
        from web3.exceptions import InvalidAddress, ProviderConnectionError, Web3ValidationError
    except ImportError:  # pragma: no cover
        return None
    import requests

    if isinstance(exc, InvalidAddress):
        return f"not a valid address: {exc}", 2
    if isinstance(exc, Web3ValidationError):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"invalid argument for the contract call: {first}", 2
    if isinstance(exc, (ProviderConnectionError, requests.ConnectionError, requests.Timeout)):
        return f"cannot reach the RPC endpoint: {exc}. Is the chain running?", 1
    return None


def run_guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; turn gpurent's and web3's errors into one-line click exceptions."""
    try:
        return fn(*args, **kwargs)
    except (click.ClickException, click.Abort, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        if os.environ.get("GPURENT_DEBUG"):
            raise
        mapped = _web3_error(exc)
        if mapped is None:
            if not isinstance(exc, GpurentError):
                raise
            mapped = explain_error(exc)
        message, code = mapped
        raise (UsageProblem if code == 2 else OperationFailed)(redact(message)) from None


class GuardedCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        return run_guarded(super().invoke, ctx)


class GuardedGroup(click.Group):
    """A group whose commands (and subgroups) print one-line errors instead of tracebacks."""

    command_class = GuardedCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_class = GuardedGroup


# -- output -------------------------------------------------------------------------------------

def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "to_0x_hex"):
        return value.to_0x_hex()
    return value


def print_json(data: Any) -> None:
    click.echo(json.dumps(_jsonable(data), indent=2, sort_keys=False))


def console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output keeps whole table rows (rich would fold them to 80 columns).
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, width=width)


@contextmanager
def progress_steps(enabled: bool) -> Iterator[Callable[[str], None]]:
    """Report slow steps on stderr (a rich spinner on a terminal); silent with ``enabled=False``."""
    if not enabled:
        yield lambda message: None
        return
    con = console(stderr=True)
    if not con.is_terminal:
        yield lambda message: con.print(f"- {message}")
        return
    with con.status("starting") as status:
        def step(message: str) -> None:
            status.update(message)
            con.print(f"[dim]-[/dim] {message}")

        yield step


# -- token amounts ------------------------------------------------------------------------------

def parse_amount(text: str, decimals: int, what: str = "amount", *, max_units: int | None = None) -> int:
    """``"12.5"`` in token units -> the integer in the token's smallest unit (exit 2 when bad)."""
    from oracle import units

    try:
        return units.parse_amount(text, decimals, what, max_units=units.UINT256_MAX if max_units is None
                                  else max_units)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def format_amount(units: int, decimals: int, symbol: str = "") -> str:
    from oracle.units import format_amount as fmt

    return fmt(units, decimals, symbol)


def address_type(value: str) -> str:
    from web3 import Web3

    if not isinstance(value, str) or not Web3.is_address(value):
        raise click.BadParameter(f"{value!r} is not a 20-byte hex address (0x + 40 hex digits)")
    return Web3.to_checksum_address(value)


class AddressParam(click.ParamType):
    name = "ADDRESS"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        try:
            return address_type(value)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


ADDRESS = AddressParam()


# -- wallets ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WalletSpec:
    """Where a command's signing key comes from: a keystore file or a local dev account."""

    keystore: Path | None = None
    password_env: str = PASSWORD_ENV
    dev_account: int | None = None

    @property
    def given(self) -> bool:
        return self.keystore is not None or self.dev_account is not None

    def describe(self) -> str:
        if self.dev_account is not None:
            return f"dev account {self.dev_account}"
        return str(self.keystore)

    def private_key(self, *, is_dev_chain: bool) -> bytes:
        if self.keystore is not None and self.dev_account is not None:
            raise ConfigError("pass --keystore or --dev-account, not both")
        if self.dev_account is not None:
            if not is_dev_chain:
                raise ConfigError("--dev-account uses anvil's public dev keys and only works on a local anvil "
                                  "chain; use --keystore for this network")
            from oracle.localchain import dev_key

            return bytes.fromhex(dev_key(self.dev_account)[2:])
        if self.keystore is None:
            raise ConfigError(f"this command signs a transaction: pass --keystore FILE (or set {KEYSTORE_ENV}), "
                              "or --dev-account N on a local anvil")
        from oracle.keys import load_keystore

        password = os.environ.get(self.password_env)
        if password is None:
            if not sys.stdin.isatty():
                raise ConfigError(f"no password for {self.keystore}: set {self.password_env} (or run interactively)")
            password = getpass.getpass(f"password for {self.keystore}: ")
        return load_keystore(self.keystore, password)


def wallet_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--keystore / --password-env / --dev-account, collected into ``wallet: WalletSpec``."""

    @click.option("--keystore", type=click.Path(dir_okay=False, path_type=Path), envvar=KEYSTORE_ENV,
                  help=f"encrypted keystore (Web3 Secret Storage) holding the account [env {KEYSTORE_ENV}]")
    @click.option("--password-env", default=PASSWORD_ENV, show_default=True, metavar="NAME",
                  help="environment variable holding the keystore password (prompted if unset)")
    @click.option("--dev-account", type=click.IntRange(0, 9), envvar=DEV_ACCOUNT_ENV, default=None,
                  help=f"use anvil dev account N (local anvil only) [env {DEV_ACCOUNT_ENV}]")
    @functools.wraps(fn)
    def wrapper(*args: Any, keystore: Path | None, password_env: str, dev_account: int | None, **kwargs: Any) -> Any:
        kwargs["wallet"] = WalletSpec(keystore, password_env, dev_account)
        return fn(*args, **kwargs)

    return wrapper


def chain_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--rpc / --deployments / --json, collected into ``chain: ChainOptions``."""

    @click.option("--rpc", default=DEFAULT_RPC, envvar=RPC_ENV, show_default=True, metavar="URL",
                  help=f"JSON-RPC endpoint of the chain [env {RPC_ENV}]")
    @click.option("--deployments", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="deployment file (default: $GPURENT_DEPLOYMENTS or ~/.gpurent/deployments.json)")
    @click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of text")
    @functools.wraps(fn)
    def wrapper(*args: Any, rpc: str, deployments: Path | None, as_json: bool, **kwargs: Any) -> Any:
        kwargs["chain"] = ChainOptions(rpc, deployments, as_json)
        return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class ChainOptions:
    rpc: str
    deployments: Path | None
    as_json: bool


# -- the chain session --------------------------------------------------------------------------

class Session:
    """A connection to one chain with gpurent's deployment on it, and (optionally) a signer.

    ``market`` and ``token`` are :class:`oracle.chain.contract.BoundContract` objects: views with
    retries, writes as checked transactions whose reverts are decoded into custom errors.
    """

    def __init__(self, opts: ChainOptions, wallet: WalletSpec | None = None, *, need_deployment: bool = True,
                 rpc_retries: int = 1) -> None:
        from eth_account import Account

        from oracle.chain.contract import connect
        from oracle.chain.tx import TransactionSender, TxPolicy, retry_rpc

        self.opts = opts
        self.w3 = connect(opts.rpc, timeout_s=10.0)
        self.policy = TxPolicy(rpc_retries=rpc_retries, backoff_base_s=0.2, backoff_max_s=1.0)
        if not os.environ.get("GPURENT_DEBUG"):
            import logging

            logging.getLogger("oracle.chain").setLevel(logging.ERROR)  # retries are not news to a person
        try:
            self.chain_id = int(retry_rpc(lambda: self.w3.eth.chain_id, f"eth_chainId at {opts.rpc}",
                                          retries=rpc_retries, backoff_base_s=0.2, backoff_max_s=1.0))
        except Exception as exc:
            text = str(exc).lower()
            why = ("connection refused" if "refused" in text else "timed out" if "timed out" in text or
                   "timeout" in text else "name not resolved" if "resolve" in text or "name or service" in text
                   else str(exc).splitlines()[0][:200])
            raise OperationFailed(f"cannot reach the RPC at {opts.rpc} ({why}); is the chain running? "
                                  "(`gpurent chain start` starts a local one)") from None
        self._client: str | None = None
        key = wallet.private_key(is_dev_chain=self.is_anvil) if wallet is not None and wallet.given else None
        if wallet is not None and key is None:
            wallet.private_key(is_dev_chain=self.is_anvil)  # raises the "pass --keystore" message
        account = Account.from_key(key) if key is not None else Account.create()
        self.can_sign = key is not None
        self.sender = TransactionSender(self.w3, account, policy=self.policy)
        self.deployment = None
        if need_deployment:
            from oracle.deployment import load_deployment

            self.deployment = load_deployment(self.chain_id, opts.deployments)
            self._bind()

    @property
    def address(self) -> str:
        return self.sender.address

    @property
    def is_anvil(self) -> bool:
        if self._client is None:
            try:
                self._client = str(self.w3.client_version)
            except Exception:
                self._client = ""
        return self._client.lower().startswith("anvil")

    def _bind(self) -> None:
        from oracle.chain.artifacts import get_artifact, load_abi
        from oracle.chain.contract import BoundContract

        assert self.deployment is not None
        token_abi = get_artifact("TestStablecoin").abi
        market_abi = load_abi("GpuRentMarket")
        code = self.w3.eth.get_code(self.deployment.market)
        if len(code) == 0:
            raise OperationFailed(
                f"no contract at the market address {self.deployment.market} on chain {self.chain_id}: "
                "the deployment file is stale (a restarted local chain?); run `gpurent deploy` again")
        self.market = BoundContract(self.sender, self.deployment.market, market_abi, extra_error_abis=[token_abi])
        from oracle.chain.client import MarketClient

        self.client = MarketClient(self.sender, self.deployment.market, market_abi)
        self.token = BoundContract(self.sender, self.deployment.payment_token, token_abi)
        self.stake_token = (self.token if self.deployment.stake_token == self.deployment.payment_token
                            else BoundContract(self.sender, self.deployment.stake_token, token_abi))

    # amounts in the payment token
    @property
    def decimals(self) -> int:
        return self.deployment.payment_token_decimals if self.deployment else 18

    @property
    def symbol(self) -> str:
        return self.deployment.payment_token_symbol if self.deployment else ""

    def fmt(self, units: int) -> str:
        return format_amount(units, self.decimals, self.symbol)

    def parse(self, text: str, what: str = "amount") -> int:
        return parse_amount(text, self.decimals, what)

    def require_signer(self) -> None:
        if not self.can_sign:
            raise ConfigError("this command sends a transaction: pass --keystore FILE or --dev-account N")

    def ensure_allowance(self, token: Any, amount: int, *, approve: bool = True) -> str | None:
        """Approve the market to pull ``amount`` of ``token`` if the allowance is short."""
        allowance = int(token.call("allowance", self.address, self.market.address))
        if allowance >= amount:
            return None
        if not approve:
            from oracle.chain.errors import TransactionRevertedError

            raise TransactionRevertedError(
                "ERC20InsufficientAllowance",
                {"spender": self.market.address, "allowance": allowance, "needed": amount},
                function="approve")
        balance = int(token.call("balanceOf", self.address))
        if balance < amount:
            from oracle.chain.errors import TransactionRevertedError

            raise TransactionRevertedError("ERC20InsufficientBalance",
                                           {"sender": self.address, "balance": balance, "needed": amount},
                                           function="approve")
        return token.transact("approve", self.market.address, amount).tx_hash

    def tx_out(self, result: Any) -> dict[str, Any]:
        return {"tx": result.tx_hash, "block": result.block_number, "gas_used": result.gas_used}


def signing_session(chain: ChainOptions, wallet: WalletSpec) -> Session:
    """A session for a command that sends a transaction: refuses to go on without a signing key."""
    session = Session(chain, wallet)
    session.require_signer()
    return session


def print_result(chain: ChainOptions, out: dict[str, Any], line: str) -> None:
    """A command's outcome: ``out`` as one JSON object with ``--json``, else the one-line ``line``."""
    if chain.as_json:
        print_json(out)
    else:
        click.echo(line)


def finalize_rental(chain: ChainOptions, wallet: WalletSpec, rental_id: int) -> None:
    """`finalizeRental` for either side: the renter's refund, the fee and reputation settle."""
    s = signing_session(chain, wallet)
    result = s.market.transact("finalizeRental", rental_id)
    ev = result.events["RentalFinalized"][0]
    print_result(chain, {**s.tx_out(result), "rental_id": rental_id, "paid": int(ev["paid"]), "fee": int(ev["fee"]),
                         "refund": int(ev["refund"]), "abandoned": bool(ev["abandoned"])},
                 f"rental {rental_id} finalized: paid {s.fmt(ev['paid'])} (fee {s.fmt(ev['fee'])}), "
                 f"refund {s.fmt(ev['refund'])} (tx {result.tx_hash})")


def unclaimed_rentals(session: Session, provider: str) -> list[int]:
    """Ids of ``provider``'s rentals with earnings not yet credited to its balance."""
    ids = []
    for rental_id in range(1, session.client.rental_count() + 1):
        rental = session.client.view("getRental", rental_id)
        if rental["provider"].lower() == provider.lower() and session.client.claimable(rental_id):
            ids.append(rental_id)
    return ids


def withdraw_balance(chain: ChainOptions, wallet: WalletSpec, token: str | None = None) -> None:
    """`withdraw` of the caller's whole balance in TOKEN (default: the payment token), after
    `claim`ing the caller's accrued provider earnings (settlement accrues them in the rental)."""
    s = signing_session(chain, wallet)
    token = token or s.deployment.payment_token
    claimed_ids = unclaimed_rentals(s, s.address)
    claimed = 0
    if claimed_ids:
        claim_result = s.market.transact("claim", claimed_ids)
        claimed = sum(int(ev["amount"]) for ev in claim_result.events["EarningsClaimed"])
    result = s.market.transact("withdraw", token)
    amount = int(result.events["Withdrawn"][0]["amount"])
    print_result(chain, {**s.tx_out(result), "token": token, "amount": amount,
                         "claimed_rentals": claimed_ids, "claimed": claimed},
                 f"withdrew {s.fmt(amount)} to {s.address} (tx {result.tx_hash})")


def rental_view(session: Session, rental_id: int) -> dict[str, Any]:
    """A rental as stored on chain (``MarketClient.get_rental``), snake_case, with enum names."""
    r = session.client.get_rental(rental_id)
    if int(r["status"]) == 0:
        from oracle.chain.errors import TransactionRevertedError

        raise TransactionRevertedError("RentalEscrow_UnknownRental", {"rentalId": rental_id}, function="getRental")
    t = session.client.rental_terms(rental_id)
    terms = {
        "agent": t["agent"], "gpu_model": bytes32_text(t["gpuModel"]), "gpu_count": int(t["gpuCount"]),
        "power_limit_w": int(t["powerLimitW"]), "memory_mib": int(t["memoryMib"]),
        "region": bytes32_text(t["region"]), "grid_intensity_g_per_kwh": int(t["gridIntensityGPerKwh"]),
        "min_uptime_bps": int(t["minUptimeBps"]), "max_gap_seconds": int(t["maxGapSeconds"]),
        "workload_hash": "0x" + bytes(t["workloadHash"]).hex(), "fee_bps": int(t["feeBps"]),
        "stake_token": t["stakeToken"], "collateral_per_gpu": int(t["collateralPerGpu"]),
        "max_duration_s": int(t["maxDurationSeconds"]), "silence_timeout_s": int(t["silenceTimeout"]),
        "settlement_grace_s": int(t["settlementGrace"]), "slash_window_s": int(t["slashWindowSeconds"]),
        "slash_bps": int(t["slashBps"]), "renter_slash_share_bps": int(t["renterSlashShareBps"]),
    }
    started, ended = int(r["startedAt"]), int(r["endedAt"])
    gpus = int(r["gpuCount"])
    # Uptime on chain is attested GPU-seconds over rented GPU-seconds (docs/economics.md).
    span = (ended or int(r["lastSettledAt"])) - started
    uptime = min(10_000, int(r["availableGpuSeconds"]) * 10_000 // (gpus * span)) if started and span > 0 else 0
    return {
        "rental_id": rental_id, "status": r["statusName"], "offer_id": int(r["offerId"]),
        "renter": r["renter"], "provider": r["provider"], "gpu_count": gpus,
        "budget": int(r["budget"]), "paid": int(r["paid"]), "remaining": int(r["budget"]) - int(r["paid"]),
        "price_per_gpu_hour": int(r["pricePerGpuHour"]), "price_per_kwh": int(r["pricePerKwh"]),
        "fee_bps": terms["fee_bps"], "sequence": int(r["sequence"]),
        "available_gpu_seconds": int(r["availableGpuSeconds"]), "uptime_bps": uptime,
        "power_limit_w": int(r["powerLimitW"]), "claimed": int(r["claimed"]),
        "last_settled_at": int(r["lastSettledAt"]), "start_deadline": int(r["startDeadline"]),
        "started_at": started, "ended_at": ended,
        "max_duration_seconds": int(r["maxDurationSeconds"]), "end_reason": r["endReasonName"],
        "collateral": int(r["collateral"]), "slashed": int(r["slashed"]), "terms": terms,
    }


def offer_view(session: Session, offer_id: int) -> dict[str, Any]:
    o = session.client.get_offer(offer_id)
    if int(o["provider"], 16) == 0:
        from oracle.chain.errors import TransactionRevertedError

        raise TransactionRevertedError("OfferBook_UnknownOffer", {"offerId": offer_id}, function="getOffer")
    return {
        "offer_id": offer_id, "provider": o["provider"], "active": bool(o["active"]), "version": int(o["version"]),
        "gpu_model": bytes32_text(o["gpuModel"]), "gpu_count": int(o["gpuCount"]), "memory_mib": int(o["memoryMib"]),
        "payment_token": o["paymentToken"], "price_per_gpu_hour": int(o["pricePerGpuHour"]),
        "price_per_kwh": int(o["pricePerKwh"]), "region": bytes32_text(o["region"]),
        "grid_intensity_g_per_kwh": int(o["gridIntensityGPerKwh"]),
        "max_duration_seconds": int(o["maxDurationSeconds"]), "min_uptime_bps": int(o["minUptimeBps"]),
        "max_gap_seconds": int(o["maxGapSeconds"]), "agent": o["agent"],
    }


def reputation_view(session: Session, provider: str) -> dict[str, Any]:
    r = session.client.reputation_of(provider)
    fees = int(r["feesPaid"])
    return {
        "score_bps": int(session.client.reputation_score(provider)),
        "completed_rentals": int(r["completedRentals"]), "abandoned_rentals": int(r["abandonedRentals"]),
        "slash_count": int(r["slashCount"]), "slashed_amount": int(r["slashedAmount"]),
        "attested_gpu_seconds": int(r["attestedGpuSeconds"]), "fees_paid": fees,
        "delivered_fees": int(r["deliveredFees"]), "abandoned_collateral": int(r["abandonedCollateral"]),
        # uptime weighted by fees paid (docs/economics.md)
        "avg_uptime_bps": int(r["deliveredFees"]) * 10_000 // fees if fees else None,
    }


def text_bytes32(text: str, what: str = "text") -> bytes:
    raw = text.encode()
    if len(raw) > 32:
        raise UsageProblem(f"{what} {text!r} is longer than 32 bytes")
    return raw.ljust(32, b"\0")


def bytes32_text(value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    return bytes(value).rstrip(b"\0").decode(errors="replace")


def gpu_model_arg(session: Session, text: str) -> bytes | str:
    """The GPU model as the deployed ABI wants it (``bytes32`` zero-padded, or ``string``)."""
    for item in session.market.abi:
        if item.get("type") == "function" and item.get("name") == "createOffer":
            for component in item["inputs"][0].get("components", []):
                if component.get("name") == "gpuModel" and component.get("type") == "string":
                    return text
    return text_bytes32(text, "--gpu-model")


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*[str(v) for v in row])
    return t


def kv_table(title: str | None, pairs: Sequence[tuple[str, Any]]):
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("", style="bold")
    t.add_column("", overflow="fold")
    for key, value in pairs:
        t.add_row(key, str(value))
    return t
