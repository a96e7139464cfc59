"""Typed read views for the CLI and the web app: an offer, a rental (with the budget left and
when it runs out), a provider's stake, a reputation (with the challenge record where the
deployed market keeps one). Each has ``as_dict()``: raw integers, snake_case, as ``--json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from oracle.actions.context import MarketView
from oracle.actions.tokens import TokenMeta
from oracle.chain.errors import TransactionRevertedError
from oracle.protocol import RentalStatus


def bytes32_text(value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    return bytes(value).rstrip(b"\0").decode(errors="replace")


@dataclass(frozen=True)
class OfferView:
    offer_id: int
    provider: str
    active: bool
    version: int
    gpu_model: str
    gpu_count: int
    memory_mib: int
    payment_token: str
    price_per_gpu_hour: int
    price_per_kwh: int
    region: str
    grid_intensity_g_per_kwh: int
    max_duration_seconds: int
    min_uptime_bps: int
    max_gap_seconds: int
    agent: str
    token: TokenMeta

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["token"]
        out["payment_token_symbol"] = self.token.symbol
        out["payment_token_decimals"] = self.token.decimals
        return out


def offer(view: MarketView, offer_id: int) -> OfferView:
    o = view.client.get_offer(offer_id)
    if int(o["provider"], 16) == 0:
        raise TransactionRevertedError("OfferBook_UnknownOffer", {"offerId": offer_id}, function="getOffer")
    return OfferView(
        offer_id=offer_id, provider=o["provider"], active=bool(o["active"]), version=int(o["version"]),
        gpu_model=bytes32_text(o["gpuModel"]), gpu_count=int(o["gpuCount"]), memory_mib=int(o["memoryMib"]),
        payment_token=o["paymentToken"], price_per_gpu_hour=int(o["pricePerGpuHour"]),
        price_per_kwh=int(o["pricePerKwh"]), region=bytes32_text(o["region"]),
        grid_intensity_g_per_kwh=int(o["gridIntensityGPerKwh"]), max_duration_seconds=int(o["maxDurationSeconds"]),
        min_uptime_bps=int(o["minUptimeBps"]), max_gap_seconds=int(o["maxGapSeconds"]), agent=o["agent"],
        token=view.token(o["paymentToken"]))


def offers(view: MarketView, *, provider: str | None = None, include_inactive: bool = True) -> list[OfferView]:
    out = []
    for offer_id in range(1, view.client.offer_count() + 1):
        o = offer(view, offer_id)
        if provider is not None and o.provider.lower() != provider.lower():
            continue
        if o.active or include_inactive:
            out.append(o)
    return out


@dataclass(frozen=True)
class RentalView:
    rental_id: int
    status: str
    offer_id: int
    renter: str
    provider: str
    gpu_count: int
    budget: int
    paid: int
    remaining: int
    price_per_gpu_hour: int
    price_per_kwh: int
    fee_bps: int
    sequence: int
    available_gpu_seconds: int
    uptime_bps: int
    power_limit_w: int
    claimed: int
    last_settled_at: int
    start_deadline: int
    started_at: int
    ended_at: int
    max_duration_seconds: int
    end_reason: str
    collateral: int
    slashed: int
    terms: dict[str, Any]
    payment_token: str
    token: TokenMeta
    #: When the budget left runs out at the GPU-hour price alone (energy adds to the cost, so it
    #: can come sooner), capped at the rental's longest duration; 0 unless the rental is Active.
    runs_out_at: int = 0
    budget_left: int = field(default=0)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["token"]
        out["payment_token_symbol"] = self.token.symbol
        out["payment_token_decimals"] = self.token.decimals
        return out


def runs_out_at(*, status: str, budget_left: int, gpu_count: int, price_per_gpu_hour: int, started_at: int,
                last_settled_at: int, max_duration_seconds: int) -> int:
    """Unix time at which ``budget_left`` is spent at ``gpu_count`` x ``price_per_gpu_hour`` from the
    last settlement on; at the latest the rental's maximum duration. 0 unless Active."""
    if status != RentalStatus.ACTIVE.contract_name or started_at == 0:
        return 0
    end_by_duration = started_at + max_duration_seconds
    rate = gpu_count * price_per_gpu_hour  # base units per hour
    if rate == 0:
        return end_by_duration
    since = max(started_at, last_settled_at)
    return min(end_by_duration, since + budget_left * 3600 // rate)


def rental(view: MarketView, rental_id: int) -> RentalView:
    """A rental as stored on chain, snake_case, with enum names and its terms."""
    r = view.client.get_rental(rental_id)
    if int(r["status"]) == 0:
        raise TransactionRevertedError("RentalEscrow_UnknownRental", {"rentalId": rental_id}, function="getRental")
    t = view.client.rental_terms(rental_id)
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
    token_address = view.client.get_offer(int(r["offerId"]))["paymentToken"]
    budget, paid = int(r["budget"]), int(r["paid"])
    left = budget - paid
    fields = dict(
        rental_id=rental_id, status=r["statusName"], offer_id=int(r["offerId"]), renter=r["renter"],
        provider=r["provider"], gpu_count=int(r["gpuCount"]), budget=budget, paid=paid, remaining=left,
        price_per_gpu_hour=int(r["pricePerGpuHour"]), price_per_kwh=int(r["pricePerKwh"]), fee_bps=terms["fee_bps"],
        sequence=int(r["sequence"]), available_gpu_seconds=int(r["availableGpuSeconds"]), uptime_bps=int(r["uptimeBps"]),
        power_limit_w=int(r["powerLimitW"]), claimed=int(r["claimed"]), last_settled_at=int(r["lastSettledAt"]),
        start_deadline=int(r["startDeadline"]), started_at=int(r["startedAt"]), ended_at=int(r["endedAt"]),
        max_duration_seconds=int(r["maxDurationSeconds"]), end_reason=r["endReasonName"],
        collateral=int(r["collateral"]), slashed=int(r["slashed"]), terms=terms, payment_token=token_address,
        token=view.token(token_address), budget_left=left)
    fields["runs_out_at"] = runs_out_at(status=fields["status"], budget_left=left, gpu_count=fields["gpu_count"],
                                        price_per_gpu_hour=fields["price_per_gpu_hour"], started_at=fields["started_at"],
                                        last_settled_at=fields["last_settled_at"],
                                        max_duration_seconds=fields["max_duration_seconds"])
    return RentalView(**fields)


def rentals_of(view: MarketView, account: str, *, role: str = "renter") -> list[int]:
    """Ids of the rentals where ``account`` is the renter (or, ``role="provider"``, the provider)."""
    key = "renter" if role == "renter" else "provider"
    return [i for i in range(1, view.client.rental_count() + 1)
            if str(view.client.view("getRental", i)[key]).lower() == account.lower()]


def unclaimed_rentals(view: MarketView, provider: str) -> list[int]:
    """Ids of ``provider``'s rentals with earnings not yet credited to its balance."""
    return [i for i in rentals_of(view, provider, role="provider") if view.client.claimable(i)]


@dataclass(frozen=True)
class StakeView:
    provider: str
    token: str
    active: int
    unbonding: int
    unbonding_release_at: int
    listed_gpus: int
    locked: int
    meta: TokenMeta

    @property
    def free(self) -> int:
        return max(0, self.active - self.locked)

    def as_dict(self) -> dict[str, Any]:
        return {"token": self.token, "active": self.active, "unbonding": self.unbonding,
                "unbonding_release_at": self.unbonding_release_at, "listed_gpus": self.listed_gpus,
                "locked": self.locked}


def stake(view: MarketView, provider: str) -> StakeView:
    token, active, unbonding, release_at, listed, locked = view.market.call("stakeOf", provider)
    meta = view.token(token) if int(token, 16) else view.stake_token
    return StakeView(provider, token, int(active), int(unbonding), int(release_at), int(listed), int(locked), meta)


@dataclass(frozen=True)
class ReputationView:
    score_bps: int
    completed_rentals: int
    abandoned_rentals: int
    slash_count: int
    slashed_amount: int
    attested_gpu_seconds: int
    fees_paid: int
    delivered_fees: int
    abandoned_collateral: int
    avg_uptime_bps: int | None  # uptime weighted by fees paid (docs/economics.md); None before any fee
    challenges_passed: int | None = None  # where the deployed market records proof-of-GPU challenges
    challenges_failed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.challenges_passed is None:
            out.pop("challenges_passed")
            out.pop("challenges_failed")
        return out


def reputation(view: MarketView, provider: str) -> ReputationView:
    r = view.client.reputation_of(provider)
    fees = int(r["feesPaid"])
    return ReputationView(
        score_bps=int(view.client.reputation_score(provider)), completed_rentals=int(r["completedRentals"]),
        abandoned_rentals=int(r["abandonedRentals"]), slash_count=int(r["slashCount"]),
        slashed_amount=int(r["slashedAmount"]), attested_gpu_seconds=int(r["attestedGpuSeconds"]), fees_paid=fees,
        delivered_fees=int(r["deliveredFees"]), abandoned_collateral=int(r["abandonedCollateral"]),
        avg_uptime_bps=int(r["deliveredFees"]) * 10_000 // fees if fees else None,
        challenges_passed=int(r["challengesPassed"]) if "challengesPassed" in r else None,
        challenges_failed=int(r["challengesFailed"]) if "challengesFailed" in r else None)
