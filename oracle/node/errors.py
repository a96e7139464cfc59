"""The node's refusals, each under the package's one root exception (``oracle.errors``).

``reason`` is a short machine-readable word (also the Prometheus label); the HTTP status for
each class lives in the API layer (``oracle.node.app``), not here.
"""

from __future__ import annotations

from typing import Any

from oracle.errors import BatchVerificationError, GpurentError, SigningError


class BatchRejected(BatchVerificationError):
    """A telemetry batch the node will not store."""

    reason = "rejected"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BodyTooLarge(BatchRejected):
    reason = "too_large"


class MalformedBatch(BatchRejected):
    """Not valid JSON, unknown or missing fields, floats, NaN, wrong types."""

    reason = "schema"


class ImplausibleBatch(BatchRejected):
    """Values no GPU can report (utilization over 100 %, power beyond twice the limit, ...)."""

    reason = "implausible"


class FutureBatch(BatchRejected):
    reason = "future"


class StaleBatch(BatchRejected):
    reason = "stale"


class UnknownRental(BatchRejected):
    reason = "unknown_rental"


class BadSignature(BatchRejected):
    """The signature does not recover to the agent the batch names."""

    reason = "bad_signature"


class WrongAgent(BatchRejected):
    """Correctly signed, but not by the agent registered for the rental."""

    reason = "wrong_agent"


class PaddedBatch(BatchRejected):
    """Samples that carry no new GPU time: a GPU sampled again within MIN_SAMPLE_INTERVAL_MS, or
    samples already stored."""

    reason = "padding"


class WrongDomain(BatchRejected):
    """Signed for another chain id or market address than this node's."""

    reason = "wrong_domain"


class SequenceGap(BatchRejected):
    reason = "sequence_gap"


class ConflictingBatch(BatchRejected):
    """A different batch is already stored at this sequence number."""

    reason = "conflict"


class BrokenHashChain(BatchRejected):
    reason = "prev_hash"


class GpuSetChanged(BatchRejected):
    reason = "gpus_changed"


class TimeRegression(BatchRejected):
    reason = "time_regression"


class RateLimited(BatchRejected):
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class ReportConflict(SigningError):
    """Signing would contradict a report already recorded for the same (rental, sequence)."""


class ReportUnavailable(GpurentError, LookupError):
    """The node has not (yet) got the batches a report would cover, or knows no such rental."""
