"""Protocol constants, defined once in Python (pure core).

Every enum and number here mirrors the contracts (``contracts/types/DataTypes.sol``,
``contracts/abstracts/UsageSettlement.sol``) and docs/protocol.md; ``tests/oracle/unit/
test_protocol.py`` reads the Solidity source and the ABI and fails when the two drift apart.

- ``RentalStatus`` / ``EndReason``: the contract enums (``getRental().status`` / ``.endReason``).
  ``.contract_name`` is the Solidity member name ("Active"), ``.label`` a human word ("active").
- ``FaultKind``: ``FaultReport.kind`` and the bit index of ``UsageReport.faultFlags``.
- ``SLASHABLE``: the kinds that become FaultReports (all but the usage flag IDLE_POWER_BUSY).
- ``MAX_BATCH_REPORTS``: the contract's cap on reports per ``settleBatch`` (also the node API's
  cap on reports per request); ``BPS``: basis points in a whole; ``MILLIJOULES_PER_KWH``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class _ProtocolEnum(IntEnum):
    """An IntEnum whose members carry the contract's spelling and a human label."""

    @property
    def contract_name(self) -> str:
        """The Solidity member name (``RentalStatus.Active``), as the ABI tools print it."""
        return _CONTRACT_NAMES[type(self)][self]

    @property
    def label(self) -> str:
        """A short human phrase for people (CLI, web)."""
        return _LABELS[type(self)][self]

    @classmethod
    def name_of(cls, code: Any) -> str:
        """``contract_name`` of ``code``, or ``str(code)`` when it is no member (never raises)."""
        try:
            return cls(int(code)).contract_name
        except (TypeError, ValueError):
            return str(code)


class RentalStatus(_ProtocolEnum):
    """``enum RentalStatus`` of DataTypes.sol. Terminal states: CANCELLED, FINALIZED."""

    NONE = 0
    OPEN = 1
    ACTIVE = 2
    ENDED = 3
    CANCELLED = 4
    FINALIZED = 5


class EndReason(_ProtocolEnum):
    """``enum EndReason`` of DataTypes.sol: why a rental left Active."""

    NONE = 0
    BY_RENTER = 1
    BY_PROVIDER = 2
    BUDGET_EXHAUSTED = 3
    MAX_DURATION = 4
    SILENCE = 5


class FaultKind(_ProtocolEnum):
    """``uint8 kind`` of a FaultReport, and the bit index in ``faultFlags`` (docs/protocol.md)."""

    #: Downtime beyond the offer's SLA (uptime per window below ``minUptimeBps``, or one GPU
    #: silent longer than ``maxGapSeconds``). Shorter gaps are unpaid time, not a fault.
    DOWNTIME = 1
    #: The energy counter disagrees with integrated power beyond the tolerance.
    ENERGY_MISMATCH = 2
    #: Impossible telemetry: power above the model's limit, a counter faster than the limit
    #: allows, busy-level power with no kernel running, conflicting readings.
    COUNTER_PHYSICS = 3
    #: Utilization at idle power: what a spinning or polling workload of the RENTER shows. A
    #: usage flag in ``faultFlags`` only; never a FaultReport, never slashed.
    IDLE_POWER_BUSY = 4
    #: A proof-of-GPU challenge failed or went unanswered (judged by the challenge protocol).
    CHALLENGE_FAILED = 5
    #: The telemetry reports fewer GPUs (of the rented model) than the rental rented.
    GPU_MISSING = 6
    #: The GPU ran a process outside the renter's container (issue 10).
    FOREIGN_PROCESS = 7


_CONTRACT_NAMES: dict[type, dict[Any, str]] = {
    RentalStatus: {
        RentalStatus.NONE: "None", RentalStatus.OPEN: "Open", RentalStatus.ACTIVE: "Active",
        RentalStatus.ENDED: "Ended", RentalStatus.CANCELLED: "Cancelled", RentalStatus.FINALIZED: "Finalized",
    },
    EndReason: {
        EndReason.NONE: "None", EndReason.BY_RENTER: "ByRenter", EndReason.BY_PROVIDER: "ByProvider",
        EndReason.BUDGET_EXHAUSTED: "BudgetExhausted", EndReason.MAX_DURATION: "MaxDuration",
        EndReason.SILENCE: "Silence",
    },
    # Fault kinds have no Solidity enum; docs/protocol.md spells them as the Python names.
    FaultKind: {kind: kind.name for kind in FaultKind},
}

_LABELS: dict[type, dict[Any, str]] = {
    RentalStatus: {
        RentalStatus.NONE: "unknown", RentalStatus.OPEN: "open (not started)", RentalStatus.ACTIVE: "active",
        RentalStatus.ENDED: "ended (not finalized)", RentalStatus.CANCELLED: "cancelled",
        RentalStatus.FINALIZED: "finalized",
    },
    EndReason: {
        EndReason.NONE: "not ended", EndReason.BY_RENTER: "ended by the renter",
        EndReason.BY_PROVIDER: "ended by the provider", EndReason.BUDGET_EXHAUSTED: "budget used up",
        EndReason.MAX_DURATION: "maximum duration reached", EndReason.SILENCE: "agent went silent",
    },
    FaultKind: {
        FaultKind.DOWNTIME: "downtime beyond the SLA",
        FaultKind.ENERGY_MISMATCH: "energy counter mismatch",
        FaultKind.COUNTER_PHYSICS: "impossible telemetry",
        FaultKind.IDLE_POWER_BUSY: "busy at idle power (usage flag)",
        FaultKind.CHALLENGE_FAILED: "proof-of-GPU challenge failed",
        FaultKind.GPU_MISSING: "GPU missing",
        FaultKind.FOREIGN_PROCESS: "foreign process on a rented GPU",
    },
}

#: Kinds that become FaultReports and may be slashed (everything but the usage flag).
SLASHABLE: frozenset[FaultKind] = frozenset(FaultKind) - {FaultKind.IDLE_POWER_BUSY}

#: Most reports one ``settleBatch`` takes (UsageSettlement._MAX_BATCH_REPORTS).
MAX_BATCH_REPORTS = 256
#: Basis points in a whole (uptimeBps, fee and slash shares).
BPS = 10_000
#: 1 kWh = 3.6e9 mJ (UsageSettlement._MILLIJOULES_PER_KWH).
MILLIJOULES_PER_KWH = 3_600_000_000

__all__ = [
    "BPS", "EndReason", "FaultKind", "MAX_BATCH_REPORTS", "MILLIJOULES_PER_KWH", "RentalStatus", "SLASHABLE",
]
