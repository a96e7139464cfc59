"""Token approvals as planned transactions (the rule itself is in :mod:`oracle.chain.tokens`)."""

from __future__ import annotations

from web3 import Web3

from oracle.actions.requests import TxRequest
from oracle.chain.tokens import (
    DEFAULT_DECIMALS,
    TokenMeta,
    allowance,
    approvals_needed,
    approve_data,
    approve_would_succeed,
    balance_of,
    decode_decimals,
    decode_symbol,
    token_meta,
)

__all__ = ["DEFAULT_DECIMALS", "TokenMeta", "allowance", "approvals_needed", "approve_data", "approve_request",
           "approve_would_succeed", "balance_of", "decode_decimals", "decode_symbol", "plan_allowance", "token_meta"]


def approve_request(token: TokenMeta, spender: str, amount: int, *, step: str, what: str) -> TxRequest:
    shown = "0" if amount == 0 else f"{amount} base units"
    return TxRequest(to=token.address, data="0x" + approve_data(spender, amount).hex(), value=0,
                     label=f"approve {shown} of {token.label} for {what}", function="approve", step=step)


def plan_allowance(w3: Web3, token: TokenMeta, owner: str, spender: str, amount: int, *,
                   what: str = "the market", exact: bool = False) -> list[TxRequest]:
    """Transactions that leave ``spender`` allowed ``amount`` of ``token`` from ``owner``.

    None when the allowance already covers it (``exact=False``) or equals it (``exact=True``, used
    to put an allowance back). A non-zero allowance that must change is first reset to zero only
    when the token would refuse the direct change (USDT); tokens that refuse ``approve(0)`` never
    see one unless the allowance must become zero.
    """
    amounts = approvals_needed(w3, token.address, owner, spender, amount, exact=exact)
    return [approve_request(token, spender, value, step="approve-reset" if i < len(amounts) - 1 else "approve", what=what)
            for i, value in enumerate(amounts)]
