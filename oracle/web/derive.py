"""Derived tables of the web index: a pure function of the stored events (no chain reads).

``apply(conn, event)`` updates the tables for one event; ``clear(conn)`` empties them before a
replay. Event rows are ``{"source","name","block","log_index","tx_hash","ts","args","extra"}``
with ``args`` as the ABI names them (camelCase, structs as dicts, bytes as 0x hex) and
``extra`` what the indexer read at the event's block (see :mod:`oracle.web.indexer`).

Token amounts are stored exactly (decimal TEXT or JSON integers); offers also keep REAL copies
of their prices for sorting and filtering in SQL.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Callable

from oracle.chain.settlements import batch_triples
from oracle.gpu_models import GPU_MODELS
from oracle.web.schema import DERIVED_TABLES

#: sort value of an offer whose GPU model has no known power (its effective price is unknown): last
UNKNOWN_PRICE = 1e300


_TYPICAL_W = {m.name: int(getattr(m, "typical_power_w", None) or m.power_limit_w) for m in GPU_MODELS}


def _dumps(value: Any) -> str:
    """JSON with sorted keys: a row built event by event equals the same row rebuilt by a replay."""
    return json.dumps(value, sort_keys=True)


def clear(conn: sqlite3.Connection) -> None:
    for table in DERIVED_TABLES:
        conn.execute(f"DELETE FROM {table}")


# ---------------------------------------------------------------------- helpers
def bytes32_text(value: str) -> str:
    raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return raw.rstrip(b"\0").decode("utf-8", errors="replace")


def kv_get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def kv_set(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                 (key, _dumps(value)))


def typical_power_w(conn: sqlite3.Connection, model: str) -> int | None:
    if model in _TYPICAL_W:
        return _TYPICAL_W[model]
    spec = kv_get(conn, "gpu_models", {}).get(model)
    return int(spec["powerLimitW"]) if spec and int(spec["powerLimitW"]) else None


def score_bps(rep: dict[str, Any] | None, prior: int) -> int:
    """reputationScore of RentalLogic.score: 10000 * delivered / (fees + abandoned + slashed + prior)."""
    if not rep:
        return 0
    denominator = int(rep["feesPaid"]) + int(rep["abandonedCollateral"]) + int(rep["slashedAmount"]) + max(1, prior)
    return 10_000 * int(rep["deliveredFees"]) // denominator


def _ensure_provider(conn: sqlite3.Connection, address: str) -> None:
    conn.execute("INSERT OR IGNORE INTO providers (address) VALUES (?)", (address,))


def _event_ref(ev: dict[str, Any]) -> dict[str, Any]:
    return {"tx_hash": ev["tx_hash"], "block": ev["block"], "timestamp": ev["ts"]}


# ---------------------------------------------------------------------- offers
def _write_offer(conn: sqlite3.Connection, ev: dict[str, Any], offer_id: int, terms: dict[str, Any],
                 *, created: bool) -> None:
    model = bytes32_text(terms["gpuModel"])
    spec = kv_get(conn, "gpu_models", {}).get(model) or {}
    power = typical_power_w(conn, model)
    pgh, pkwh = int(terms["pricePerGpuHour"]), int(terms["pricePerKwh"])
    eff = pgh + pkwh * power // 1000 if power is not None else None
    cols = dict(
        gpu_model=model, gpu_count=int(terms["gpuCount"]), memory_mib=int(spec.get("memoryMib", 0)),
        payment_token=terms["paymentToken"], price_gpu_hour=str(pgh), price_kwh=str(pkwh), pgh_f=float(pgh),
        pkwh_f=float(pkwh), typical_power_w=power, eff=None if eff is None else str(eff),
        eff_f=UNKNOWN_PRICE if eff is None else float(eff),
        effh_f=UNKNOWN_PRICE if eff is None else float(eff) * int(terms["gpuCount"]),
        region=bytes32_text(terms["region"]),
        grid=int(terms["gridIntensityGPerKwh"]), max_duration=int(terms["maxDurationSeconds"]),
        min_uptime=int(terms["minUptimeBps"]), max_gap=int(terms["maxGapSeconds"]), agent=terms["agent"],
    )
    if created:
        provider = ev["args"]["provider"]
        _ensure_provider(conn, provider)
        history = [{"event": "OfferCreated", "version": 0, **_event_ref(ev)}]
        cols.update(offer_id=offer_id, provider=provider, active=1, version=0, created_tx=ev["tx_hash"],
                    created_block=ev["block"], created_ts=ev["ts"], history=_dumps(history))
        names = ", ".join(cols)
        conn.execute(f"INSERT OR REPLACE INTO offers ({names}) VALUES ({', '.join('?' for _ in cols)})",
                     tuple(cols.values()))
        _sync_offers(conn, provider)
    else:
        version = int(ev["args"]["version"])
        _append_history(conn, offer_id, {"event": "OfferUpdated", "version": version, **_event_ref(ev)})
        cols["version"] = version
        sets = ", ".join(f"{k}=?" for k in cols)
        conn.execute(f"UPDATE offers SET {sets} WHERE offer_id=?", (*cols.values(), offer_id))


def _append_history(conn: sqlite3.Connection, offer_id: int, item: dict[str, Any]) -> None:
    row = conn.execute("SELECT history FROM offers WHERE offer_id=?", (offer_id,)).fetchone()
    if row is None:
        return
    history = json.loads(row[0]) + [item]
    conn.execute("UPDATE offers SET history=? WHERE offer_id=?", (_dumps(history), offer_id))


def _offer_created(conn, ev):
    _write_offer(conn, ev, int(ev["args"]["offerId"]), ev["args"]["terms"], created=True)
    _stake(conn, ev)


def _offer_updated(conn, ev):
    _write_offer(conn, ev, int(ev["args"]["offerId"]), ev["args"]["terms"], created=False)
    _stake(conn, ev)


def _offer_withdrawn(conn, ev):
    offer_id = int(ev["args"]["offerId"])
    conn.execute("UPDATE offers SET active=0 WHERE offer_id=?", (offer_id,))
    _append_history(conn, offer_id, {"event": "OfferWithdrawn", **_event_ref(ev)})
    _stake(conn, ev)


# ---------------------------------------------------------------------- stake / reputation
def _stake(conn, ev):
    stake = ev["extra"].get("stake")
    provider = ev["extra"].get("provider")
    if stake is None or provider is None:
        return
    _ensure_provider(conn, provider)
    conn.execute("UPDATE providers SET stake=?, stake_block=? WHERE address=?",
                 (_dumps(stake), ev["block"], provider))


def _reputation(conn, ev):
    provider, rep = ev["args"]["provider"], ev["args"]["reputation"]
    _ensure_provider(conn, provider)
    prior = int(kv_get(conn, "params", {}).get("reputationPrior", 1))
    conn.execute(
        "UPDATE providers SET rep=?, score_bps=?, completed=?, abandoned=?, slash_count=? WHERE address=?",
        (_dumps(rep), score_bps(rep, prior), int(rep["completedRentals"]), int(rep["abandonedRentals"]),
         int(rep["slashCount"]), provider),
    )
    _sync_offers(conn, provider)


def _sync_offers(conn, provider: str) -> None:
    """Copy the provider's standing into its offers' sort columns."""
    row = conn.execute("SELECT score_bps, uptime_bps, ch_pass, ch_fail, slash_count FROM providers WHERE address=?",
                       (provider,)).fetchone()
    if row is None:
        return
    score, uptime, passed, failed, slashes = row
    conn.execute("UPDATE offers SET score_bps=?, uptime_bps=?, ch_pass=?, ch_fail=?, slash_count=? WHERE provider=?",
                 (int(score), -1 if uptime is None else int(uptime), int(passed), int(failed), int(slashes), provider))


def _rescore_all(conn):
    prior = int(kv_get(conn, "params", {}).get("reputationPrior", 1))
    for address, rep in conn.execute("SELECT address, rep FROM providers WHERE rep IS NOT NULL").fetchall():
        conn.execute("UPDATE providers SET score_bps=? WHERE address=?", (score_bps(json.loads(rep), prior), address))
        _sync_offers(conn, address)


def _provider_stats(conn, provider: str) -> None:
    row = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(reports),0), COALESCE(SUM(ch_pass),0), COALESCE(SUM(ch_fail),0), "
        "COALESCE(SUM(avail_gs),0), COALESCE(SUM(rented_gs),0) FROM rentals WHERE provider=?", (provider,)
    ).fetchone()
    rentals, reports, passed, failed, avail, rented = (int(x) for x in row)
    uptime = min(10_000, avail * 10_000 // rented) if rented else None
    _ensure_provider(conn, provider)
    conn.execute(
        "UPDATE providers SET rentals=?, settled_reports=?, ch_pass=?, ch_fail=?, avail_gs=?, rented_gs=?, "
        "uptime_bps=? WHERE address=?", (rentals, reports, passed, failed, avail, rented, uptime, provider))
    _sync_offers(conn, provider)


# ---------------------------------------------------------------------- rentals
def _rental_row(conn, rental_id: int) -> tuple[dict[str, Any], str] | None:
    row = conn.execute("SELECT data, provider FROM rentals WHERE rental_id=?", (rental_id,)).fetchone()
    return None if row is None else (json.loads(row[0]), row[1])


def _save_rental(conn, rental_id: int, data: dict[str, Any]) -> None:
    chain = data.get("chain") or {}
    status = int(chain.get("status", data.get("status", 1)))
    started = int(chain.get("startedAt", 0))
    end = int(chain.get("endedAt", 0)) or int(chain.get("lastSettledAt", 0))
    rented = int(chain.get("gpuCount", 0)) * max(0, end - started) if started else 0
    report = data.get("last_report") or {}
    conn.execute(
        "UPDATE rentals SET status=?, avail_gs=?, rented_gs=?, ch_pass=?, ch_fail=?, reports=?, data=? "
        "WHERE rental_id=?",
        (status, int(chain.get("availableGpuSeconds", 0)), rented, int(report.get("challengesPassed", 0)),
         int(report.get("challengesFailed", 0)), int(data.get("reports", 0)), _dumps(data), rental_id),
    )


def _rental_event(conn, ev, rental_id: int, update: Callable[[dict[str, Any]], None] | None = None) -> None:
    found = _rental_row(conn, rental_id)
    if found is None:
        return
    data, provider = found
    snapshot = (ev["extra"].get("rentals") or {}).get(str(rental_id)) or ev["extra"].get("rental")
    if snapshot:
        data["chain"] = snapshot
    if update is not None:
        update(data)
    _save_rental(conn, rental_id, data)
    _provider_stats(conn, provider)


def _rental_opened(conn, ev):
    a = ev["args"]
    rental_id = int(a["rentalId"])
    data = {"chain": ev["extra"].get("rental") or {}, "terms": ev["extra"].get("terms") or {},
            "opened": _event_ref(ev), "txs": {"opened": ev["tx_hash"], "top_ups": []}, "reports": 0,
            "status": 1, "budget_at_open": int(a["budget"]), "start_deadline": int(a["startDeadline"])}
    offer = conn.execute("SELECT payment_token FROM offers WHERE offer_id=?", (int(a["offerId"]),)).fetchone()
    data["payment_token"] = offer[0] if offer else None
    conn.execute(
        "INSERT OR REPLACE INTO rentals (rental_id, offer_id, renter, provider, status, opened_block, data) "
        "VALUES (?,?,?,?,?,?,?)",
        (rental_id, int(a["offerId"]), a["renter"], a["provider"], 1, ev["block"], _dumps(data)),
    )
    _save_rental(conn, rental_id, data)
    _provider_stats(conn, a["provider"])


def _set_tx(key: str, ev: dict[str, Any], **fields: Any) -> Callable[[dict[str, Any]], None]:
    def update(data: dict[str, Any]) -> None:
        data.setdefault("txs", {})[key] = ev["tx_hash"]
        data.setdefault("events", {})[key] = {**_event_ref(ev), **fields}
    return update


def _rental_started(conn, ev):
    _rental_event(conn, ev, int(ev["args"]["rentalId"]), _set_tx("started", ev))
    _stake(conn, ev)


def _rental_topped_up(conn, ev):
    def update(data):
        data.setdefault("txs", {}).setdefault("top_ups", []).append(ev["tx_hash"])
    _rental_event(conn, ev, int(ev["args"]["rentalId"]), update)


def _rental_cancelled(conn, ev):
    _rental_event(conn, ev, int(ev["args"]["rentalId"]),
                  _set_tx("cancelled", ev, refund=int(ev["args"]["refund"]), by=ev["args"]["by"]))


def _rental_ended(conn, ev):
    a = ev["args"]
    _rental_event(conn, ev, int(a["rentalId"]), _set_tx("ended", ev, reason=int(a["reason"]), by=a["by"]))


def _rental_finalized(conn, ev):
    a = ev["args"]
    _rental_event(conn, ev, int(a["rentalId"]), _set_tx(
        "finalized", ev, paid=int(a["paid"]), fee=int(a["fee"]), refund=int(a["refund"]),
        abandoned=bool(a["abandoned"])))
    _stake(conn, ev)


def _slash_paid_out(conn, ev):
    a = ev["args"]
    _rental_event(conn, ev, int(a["rentalId"]), _set_tx(
        "slash_paid_out", ev, renter_share=int(a["renterShare"]), treasury_share=int(a["treasuryShare"])))


# ---------------------------------------------------------------------- settlements
def _settle_one(conn, ev, rental_id: int, sequence: int, payment: int) -> None:
    found = _rental_row(conn, rental_id)
    if found is None:
        return
    reports = ev["extra"].get("reports") or []
    report = next((r for r in reports if int(r["rentalId"]) == rental_id and int(r["sequence"]) == sequence), None)
    prev = conn.execute("SELECT paid_after FROM settlements WHERE rental_id=? ORDER BY sequence DESC LIMIT 1",
                        (rental_id,)).fetchone()
    paid_after = (int(prev[0]) if prev else 0) + payment
    conn.execute(
        "INSERT OR REPLACE INTO settlements (rental_id, sequence, block, log_index, tx_hash, ts, payment, paid_after, "
        "method, submitter, report, signers) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (rental_id, sequence, ev["block"], ev["log_index"], ev["tx_hash"], ev["ts"], str(payment), str(paid_after),
         ev["extra"].get("method"), ev["extra"].get("submitter"),
         None if report is None else _dumps({k: v for k, v in report.items() if k != "signers"}),
         _dumps(report.get("signers", []) if report else [])),
    )

    def update(data):
        data["reports"] = int(data.get("reports", 0)) + 1
        if report is not None:
            data["last_report"] = {k: v for k, v in report.items() if k != "signers"}
        data["last_settlement"] = {"sequence": sequence, **_event_ref(ev)}
    _rental_event(conn, ev, rental_id, update)


def _usage_settled(conn, ev):
    a = ev["args"]
    _settle_one(conn, ev, int(a["rentalId"]), int(a["sequence"]), int(a["payment"]))


def _usage_batch_settled(conn, ev):
    for rental_id, sequence, payment in batch_triples(int(x) for x in ev["args"]["settled"]):
        _settle_one(conn, ev, rental_id, sequence, payment)


def _slashed(conn, ev):
    a = ev["args"]
    conn.execute(
        "INSERT OR REPLACE INTO slashes (rental_id, fault_id, provider, kind, token, amount, block, tx_hash, ts, fault) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        (int(a["rentalId"]), int(a["faultId"]), a["provider"], int(a["kind"]), a["token"], str(int(a["amount"])),
         ev["block"], ev["tx_hash"], ev["ts"], _dumps(ev["extra"].get("fault"))),
    )
    _rental_event(conn, ev, int(a["rentalId"]))
    _stake(conn, ev)


# ---------------------------------------------------------------------- ledger
def _ledger(kind: str, account_key: str, token_key: str | None = None):
    def apply_one(conn, ev):
        a = ev["args"]
        token = a.get(token_key) if token_key else None
        rental_id = a.get("rentalId")
        if token is None and rental_id is not None:
            found = _rental_row(conn, int(rental_id))
            token = found[0].get("payment_token") if found else None
        conn.execute(
            "INSERT OR REPLACE INTO ledger (block, log_index, kind, account, token, amount, rental_id, tx_hash, ts) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (ev["block"], ev["log_index"], kind, a[account_key], token, str(int(a["amount"])),
             None if rental_id is None else int(rental_id), ev["tx_hash"], ev["ts"]),
        )
        if kind == "claimed":
            _rental_event(conn, ev, int(rental_id))
    return apply_one


# ---------------------------------------------------------------------- market settings
def _kv_map(key: str, field: str, value_of: Callable[[dict[str, Any]], Any]):
    def apply_one(conn, ev):
        table = kv_get(conn, key, {})
        table[ev["args"][field]] = value_of(ev["args"])
        kv_set(conn, key, table)
    return apply_one


def _gpu_model_set(conn, ev):
    a = ev["args"]
    table = kv_get(conn, "gpu_models", {})
    table[bytes32_text(a["model"])] = {"powerLimitW": int(a["powerLimitW"]), "memoryMib": int(a["memoryMib"])}
    kv_set(conn, "gpu_models", table)


def _params_updated(conn, ev):
    if ev["source"] != "market":
        return
    kv_set(conn, "params", ev["args"]["params"])
    _rescore_all(conn)


def _signer_set_updated(conn, ev):
    a = ev["args"]
    previous = kv_get(conn, "signer_set")
    kv_set(conn, "signer_set", {"version": int(a["version"]), "threshold": int(a["threshold"]),
                                "signers": list(a["signers"]), **_event_ref(ev)})
    if previous is not None:
        kv_set(conn, "previous_signer_set", previous)


def _kv_value(key: str, value_of: Callable[[dict[str, Any]], Any]):
    def apply_one(conn, ev):
        kv_set(conn, key, value_of(ev["args"]))
    return apply_one


# ---------------------------------------------------------------------- timelock
def _call_scheduled(conn, ev):
    a = ev["args"]
    delay = int(a["delay"])
    conn.execute(
        "INSERT OR REPLACE INTO timelock_ops (id, target, value, data, predecessor, delay, scheduled_ts, ready_at, "
        "state, scheduled_tx, block) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (a["id"], a["target"], str(int(a["value"])), a["data"], a["predecessor"], delay, ev["ts"],
         None if ev["ts"] is None else int(ev["ts"]) + delay, "pending", ev["tx_hash"], ev["block"]),
    )


def _call_done(state: str):
    def apply_one(conn, ev):
        conn.execute("UPDATE timelock_ops SET state=?, done_tx=? WHERE id=?", (state, ev["tx_hash"], ev["args"]["id"]))
    return apply_one


MARKET_HANDLERS: dict[str, Callable[[sqlite3.Connection, dict[str, Any]], None]] = {
    "OfferCreated": _offer_created,
    "OfferUpdated": _offer_updated,
    "OfferWithdrawn": _offer_withdrawn,
    "RentalOpened": _rental_opened,
    "RentalStarted": _rental_started,
    "RentalToppedUp": _rental_topped_up,
    "RentalCancelled": _rental_cancelled,
    "RentalEnded": _rental_ended,
    "RentalFinalized": _rental_finalized,
    "SlashPaidOut": _slash_paid_out,
    "UsageSettled": _usage_settled,
    "UsageBatchSettled": _usage_batch_settled,
    "Slashed": _slashed,
    "ReputationUpdated": _reputation,
    "Staked": _stake,
    "UnstakeRequested": _stake,
    "Unstaked": _stake,
    "EarningsClaimed": _ledger("claimed", "provider"),
    "Withdrawn": _ledger("withdrawn", "account", "token"),
    "GpuModelSet": _gpu_model_set,
    "ParamsUpdated": _params_updated,
    "PaymentTokenSet": _kv_map("payment_tokens", "token", lambda a: bool(a["allowed"])),
    "StakeTokenSet": _kv_map("stake_tokens", "token", lambda a: int(a["minStakePerGpu"])),
    "OperatorRegistrySet": _kv_value("operator_registry", lambda a: {"address": a["registry"],
                                                                      "fee_share_bps": int(a["feeShareBps"])}),
    "SignerSetUpdated": _signer_set_updated,
    "SignerSetOverlapUpdated": _kv_value("signer_set_overlap", lambda a: int(a["overlapSeconds"])),
}

TIMELOCK_HANDLERS: dict[str, Callable[[sqlite3.Connection, dict[str, Any]], None]] = {
    "CallScheduled": _call_scheduled,
    "CallExecuted": _call_done("done"),
    "Cancelled": _call_done("cancelled"),
    "MinDelayChange": _kv_value("timelock_min_delay", lambda a: int(a["newDuration"])),
}

#: Events each follower asks for (the market's and the timelock's).
MARKET_EVENTS = tuple(MARKET_HANDLERS)
TIMELOCK_EVENTS = tuple(TIMELOCK_HANDLERS)


def apply(conn: sqlite3.Connection, ev: dict[str, Any]) -> None:
    handlers = TIMELOCK_HANDLERS if ev["source"] == "timelock" else MARKET_HANDLERS
    handler = handlers.get(ev["name"])
    if handler is not None:
        handler(conn, ev)
