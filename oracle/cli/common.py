"""What every chain-facing ``gpurent`` subcommand shares, in one import: errors
(:mod:`oracle.cli.errors`), output (:mod:`oracle.cli.output`), options and wallets
(:mod:`oracle.cli.options`) and the chain session (:mod:`oracle.cli.session`). Chain work is done
by :mod:`oracle.actions`; the commands format what it returns.
"""

from __future__ import annotations

from oracle.cli.errors import (
    GuardedCommand,
    GuardedGroup,
    OperationFailed,
    UsageProblem,
    explain_error,
    run_guarded,
)
from oracle.cli.options import (
    ADDRESS,
    DEFAULT_RPC,
    DEV_ACCOUNT_ENV,
    KEYSTORE_ENV,
    PASSWORD_ENV,
    RPC_ENV,
    AddressParam,
    ChainOptions,
    WalletSpec,
    address_type,
    bytes32_text,
    chain_options,
    format_amount,
    parse_amount,
    text_bytes32,
    wallet_options,
)
from oracle.cli.output import console, kv_table, print_json, print_result, progress_steps, table
from oracle.cli.session import (
    Session,
    gpu_model_arg,
    offer_view,
    rental_view,
    reputation_view,
    signing_session,
    tx_out,
)

__all__ = [
    "ADDRESS", "DEFAULT_RPC", "DEV_ACCOUNT_ENV", "KEYSTORE_ENV", "PASSWORD_ENV", "RPC_ENV", "AddressParam", "ChainOptions", "GuardedCommand", "GuardedGroup", "OperationFailed", "Session",
    "UsageProblem", "WalletSpec", "address_type", "bytes32_text", "chain_options", "console", "explain_error",
    "format_amount", "gpu_model_arg", "kv_table", "offer_view", "parse_amount", "print_json", "print_result",
    "progress_steps", "rental_view", "reputation_view", "run_guarded", "signing_session", "table", "text_bytes32",
    "tx_out", "wallet_options",
]
