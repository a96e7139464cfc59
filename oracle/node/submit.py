"""Where a node sends its settlements: the market itself, or the operator registry's
``settleFor`` / ``settleBatchFor`` (contracts/operators), which settle on the market and accrue the
submitting operator a gas rebate per report settled.

:class:`RegistrySubmitter` is used when the node is configured with the registry's address. If the
registry refuses the node at the pre-flight estimate (not a bonded member of the signer set: an
``OperatorRegistry_*`` error, no gas spent), the node submits to the market directly from then on
and says so in the log: a settlement is never lost for want of a rebate.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Sequence

from oracle.chain.errors import TransactionRevertedError
from oracle.chain.tx import TxResult

log = logging.getLogger(__name__)


class RegistrySubmitter:
    """``settle`` / ``settle_batch`` through the registry; events decoded as the market's."""

    def __init__(self, market_client: Any, operator_client: Any) -> None:
        self.market_client = market_client
        self.operator = operator_client
        self.use_registry = True

    def _market_events(self, result: TxResult) -> TxResult:
        market = getattr(self.market_client, "market", None)
        if market is None or result.receipt is None:
            return result
        return replace(result, events=market.decode_events(result.receipt))

    def _fallback(self, exc: TransactionRevertedError) -> bool:
        if exc.tx_hash is None and exc.error_name.startswith("OperatorRegistry_"):
            log.warning("the operator registry refuses this node's settlements (%s); settling on the market "
                        "directly (no gas rebate)", exc.error_name)
            self.use_registry = False
            return True
        return False

    def settle(self, report: Any, signatures: bytes) -> TxResult:
        if self.use_registry:
            try:
                return self._market_events(self.operator.settle_for(report, signatures))
            except TransactionRevertedError as exc:
                if not self._fallback(exc):
                    raise
        return self.market_client.settle(report, signatures)

    def settle_batch(self, reports: Sequence[Any], signatures: bytes) -> TxResult:
        if self.use_registry:
            try:
                return self._market_events(self.operator.settle_batch_for(reports, signatures))
            except TransactionRevertedError as exc:
                if not self._fallback(exc):
                    raise
        return self.market_client.settle_batch(reports, signatures)


def registry_submitter(market_client: Any, registry_address: str) -> RegistrySubmitter:
    """A :class:`RegistrySubmitter` for the node's key on the registry at ``registry_address``."""
    from oracle.chain.operators import OperatorClient  # the operator registry's client

    return RegistrySubmitter(market_client, OperatorClient(market_client.sender, registry_address))
