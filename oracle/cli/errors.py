"""Errors a person can act on: every command prints one line, never a traceback, and exits 1 when
the operation failed (a transaction reverted, the RPC is unreachable, a node refused) or 2 when the
command or its configuration is wrong (bad address, missing deployment, unreadable keystore, wrong
password). ``GPURENT_DEBUG=1`` shows the traceback anyway. An interrupt after a transaction was
sent says what was sent and how to check (exit 130).
"""

from __future__ import annotations

import contextvars
import os
from typing import Any, Callable

import click

from oracle.actions.executor import TxInterrupted
from oracle.errors import ConfigError, GpurentError, KeystoreError
from oracle.protocol import RentalStatus
from oracle.redact import redact

# -- errors -------------------------------------------------------------------------------------

class UsageProblem(click.ClickException):
    """The command or its configuration is wrong: exit 2."""

    exit_code = 2


class OperationFailed(click.ClickException):
    """The operation was tried and failed: exit 1."""

    exit_code = 1


# The token the current command's amounts are in (set when a session resolves it), so that errors
# name amounts as "12.5 tUSD" rather than raw base units.
_TOKEN_UNITS: contextvars.ContextVar[tuple[int, str] | None] = contextvars.ContextVar("gpurent_token", default=None)


def use_token_units(decimals: int, symbol: str) -> None:
    _TOKEN_UNITS.set((int(decimals), symbol))


def _amt(units: Any) -> str:
    from oracle.units import format_amount

    try:
        value = int(units)
    except (TypeError, ValueError):
        return str(units)
    token = _TOKEN_UNITS.get()
    return f"{value} base units" if token is None else format_amount(value, token[0], token[1])


def _when(unix_s: Any) -> str:
    import time

    from oracle.units import format_time

    try:
        return format_time(int(unix_s), int(time.time()))
    except (TypeError, ValueError):
        return str(unix_s)


def _insufficient_stake(a: dict[str, Any], function: str | None) -> str:
    """The stake check's revert, with the advice that fits what was tried."""
    active, required = a.get("active"), a.get("required")
    if function == "requestUnstake":
        return (f"unstaking that much would leave {_amt(active)} active, but your listed GPUs and the collateral "
                f"of running rentals need {_amt(required)}: withdraw an offer first "
                "(`gpurent provider offer withdraw OFFER_ID`), or unstake less")
    if not required:
        return (f"{a.get('provider')} has no stake yet: stake first with `gpurent provider stake AMOUNT` "
                "(the market's minimum per listed GPU: `gpurent governance show`)")
    return (f"stake too low: {a.get('provider')} has {_amt(active)} active, the listed GPUs and the collateral "
            f"locked for running rentals need {_amt(required)}; add stake with `gpurent provider stake`")


# Custom errors of the market and of OpenZeppelin's ERC-20, as sentences with the next step.
_REVERT_HINTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "ERC20InsufficientAllowance": lambda a: (
        f"token allowance too low: {a.get('spender')} may spend {_amt(a.get('allowance'))} of yours, "
        f"this needs {_amt(a.get('needed'))}; approve it (gpurent approves automatically unless --no-approve)"),
    "ERC20InsufficientBalance": lambda a: (
        f"token balance too low: {a.get('sender')} holds {_amt(a.get('balance'))}, this needs {_amt(a.get('needed'))}; "
        "get tokens first (on a local chain: `gpurent chain fund ADDRESS`)"),
    "RentalEscrow_CollateralUnavailable": lambda a: (
        f"rental {a.get('rentalId')} needs {_amt(a.get('collateral'))} of free stake as collateral, you have "
        f"{_amt(a.get('free'))} free; add stake with `gpurent provider stake`"),
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
        f"nothing unbonded yet: {_amt(a.get('unbonding'))} unbonding until {_when(a.get('releaseAt'))}"),
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
        f"rental {a.get('rentalId')} is {RentalStatus.name_of(a.get('status'))}, which does not allow this"),
    "RentalEscrow_Unauthorized": lambda a: f"{a.get('caller')} may not do this to rental {a.get('rentalId')}",
    "RentalEscrow_OfferVersionMismatch": lambda a: (
        f"offer {a.get('offerId')} changed (version {a.get('current')}, you saw {a.get('expected')}); "
        "check its new terms with `gpurent market list` and retry"),
    "RentalEscrow_InvalidGpuCount": lambda a: f"asked for {a.get('gpuCount')} GPUs, the offer has {a.get('offered')}",
    "RentalEscrow_InvalidAmount": lambda a: f"invalid amount {_amt(a.get('amount'))} (zero, or the budget would exceed uint96)",
    "RentalEscrow_StartDeadlinePassed": lambda a: (
        f"rental {a.get('rentalId')} passed its start deadline ({_when(a.get('deadline'))}); the renter can cancel it "
        "(`gpurent rent end RENTAL_ID`)"),
    "RentalEscrow_TooEarly": lambda a: f"too early for rental {a.get('rentalId')}: possible from {_when(a.get('until'))}",
    "RentalEscrow_NothingToWithdraw": lambda a: f"nothing to withdraw for {a.get('account')} in {a.get('token')}",
    "RentalEscrow_TransferShortfall": lambda a: "the token delivered less than asked (fee-on-transfer tokens are refused)",
    "UsageSettlement_StaleSequence": lambda a: (
        f"rental {a.get('rentalId')} already settled sequence {a.get('lastSequence')}; this report "
        f"({a.get('sequence')}) is not newer"),
    "UsageSettlement_NotSettleable": lambda a: (
        f"rental {a.get('rentalId')} is {RentalStatus.name_of(a.get('status'))} and can no longer settle"),
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
        if exc.error_name == "ProviderStaking_InsufficientStake":
            message = f"{what}: {_insufficient_stake(exc.error_args, exc.function)}"
        elif hint is not None:
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
    except TxInterrupted as exc:
        click.echo(f"Error: {redact(str(exc))}", err=True)
        raise click.exceptions.Exit(130) from None
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
