"""The market query: every offer of the index, filtered and sorted in SQL (WEB-API.md "Market").

Sorting and filtering use the offers' REAL price columns and the providers' indexed scores, so
a request touches one indexed join of SQLite, never the chain. The exact integers are returned
from the TEXT columns.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

#: sort key -> column of ``offers`` (each with an index on (active, column, offer_id), so a page
#: is read in order from the index and the scan stops at ``offset + limit``)
SORTS: dict[str, str] = {
    "offer_id": "offer_id",
    "gpu_model": "gpu_model",
    "gpu_count": "gpu_count",
    "memory_mib": "memory_mib",
    "price_per_gpu_hour": "pgh_f",
    "price_per_kwh": "pkwh_f",
    "effective_price_per_gpu_hour": "eff_f",
    "effective_price_per_hour": "effh_f",
    "region": "region",
    "grid_intensity_g_per_kwh": "grid",
    "reputation_bps": "score_bps",
    "uptime_bps": "uptime_bps",
    "challenges_passed": "ch_pass",
    "challenges_failed": "ch_fail",
    "slash_count": "slash_count",
    "max_duration_s": "max_duration",
    "budget_hours": "budget_hours",  # = effective price of the GPUs rented, the other way round
}
DESC_BY_DEFAULT = {"reputation_bps", "uptime_bps", "budget_hours", "challenges_passed"}
DEFAULT_SORT = "effective_price_per_gpu_hour"
MAX_LIMIT = 200

# filter name -> (SQL with one ? , type)
RANGE_FILTERS: dict[str, tuple[str, type]] = {
    "min_gpu_count": ("o.gpu_count >= ?", int),
    "min_memory_mib": ("o.memory_mib >= ?", int),
    "max_price_per_gpu_hour": ("o.pgh_f <= ?", int),
    "max_price_per_kwh": ("o.pkwh_f <= ?", int),
    "max_effective_price_per_gpu_hour": ("o.eff_f <= ?", int),
    "max_grid_intensity_g_per_kwh": ("o.grid <= ?", int),
    "min_reputation_bps": ("o.score_bps >= ?", int),
    "min_uptime_bps": ("o.uptime_bps >= ?", int),
    "max_challenges_failed": ("o.ch_fail <= ?", int),
    "max_slash_count": ("o.slash_count <= ?", int),
    "min_max_duration_s": ("o.max_duration >= ?", int),
}

OFFER_COLUMNS = (
    "o.offer_id, o.provider, o.active, o.version, o.gpu_model, o.gpu_count, o.memory_mib, o.payment_token, "
    "o.price_gpu_hour, o.price_kwh, o.typical_power_w, o.eff, o.region, o.grid, o.max_duration, o.min_uptime, "
    "o.max_gap, o.agent, o.created_tx, o.created_block, o.created_ts, o.score_bps, o.uptime_bps, o.ch_pass, "
    "o.ch_fail, o.slash_count"
)
PROVIDER_COLUMNS = "address, rep, settled_reports, rentals"


class QueryError(ValueError):
    """A bad query parameter; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass
class MarketQuery:
    sort: str = DEFAULT_SORT
    order: str | None = None
    limit: int = 50
    offset: int = 0
    gpu_model: list[str] = field(default_factory=list)
    region: list[str] = field(default_factory=list)
    payment_token: str | None = None
    provider: str | None = None
    q: str | None = None
    include_withdrawn: bool = False
    ranges: dict[str, int] = field(default_factory=dict)
    budget: int | None = None  # raw units
    gpus: int | None = None

    def check(self) -> None:
        if self.sort not in SORTS:
            raise QueryError("sort", f"unknown sort key {self.sort!r}; one of {', '.join(SORTS)}")
        if self.order is None:
            self.order = "desc" if self.sort in DESC_BY_DEFAULT else "asc"
        if self.order not in ("asc", "desc"):
            raise QueryError("order", "asc or desc")
        if self.sort == "budget_hours" and self.budget is None:
            raise QueryError("sort", "budget_hours needs a budget")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError("limit", f"between 1 and {MAX_LIMIT}")
        if self.offset < 0:
            raise QueryError("offset", "0 or more")
        if self.gpus is not None and self.gpus < 1:
            raise QueryError("gpus", "1 or more")
        for name, value in self.ranges.items():
            if name not in RANGE_FILTERS:
                raise QueryError(name, "unknown filter")
            if value < 0:
                raise QueryError(name, "0 or more")


def _where(conn: sqlite3.Connection, query: MarketQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if not query.include_withdrawn:
        clauses.append("o.active = 1")
    if query.gpu_model:
        clauses.append(f"o.gpu_model IN ({','.join('?' for _ in query.gpu_model)})")
        params += query.gpu_model
    if query.region:
        clauses.append(f"o.region IN ({','.join('?' for _ in query.region)})")
        params += query.region
    if query.payment_token:
        clauses.append("o.payment_token = ?")
        params.append(query.payment_token)
    if query.provider:
        clauses.append("o.provider = ?")
        params.append(query.provider)
    if query.q:
        # the few distinct models and regions that contain the text, then an indexed IN (no LIKE per offer)
        like = "%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        models = [r[0] for r in conn.execute(
            "SELECT DISTINCT gpu_model FROM offers WHERE gpu_model LIKE ? ESCAPE '\\'", (like,)).fetchall()]
        regions = [r[0] for r in conn.execute(
            "SELECT DISTINCT region FROM offers WHERE region LIKE ? ESCAPE '\\'", (like,)).fetchall()]
        clauses.append(f"(o.gpu_model IN ({','.join('?' for _ in models)}) OR "
                       f"o.region IN ({','.join('?' for _ in regions)}))")
        params += models + regions
    for name, value in sorted(query.ranges.items()):
        clauses.append(RANGE_FILTERS[name][0])
        params.append(value)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def search_offers(conn: sqlite3.Connection, query: MarketQuery) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, the page) for ``query`` (checked first). Ties go by offer id in the sort's
    direction. Each row is the offer's columns plus its provider's (``rep``, ``settled_reports``,
    ``rentals``), read for the page's providers only."""
    query.check()
    where, params = _where(conn, query)
    total = int(conn.execute("SELECT COUNT(*) FROM offers o" + where, params).fetchone()[0])
    order = "DESC" if query.order == "desc" else "ASC"
    if query.sort == "budget_hours":
        # more hours = cheaper per hour for the GPUs rented: the effective-price order reversed
        order = "ASC" if query.order == "desc" else "DESC"
        key = "o.effh_f" if query.gpus is None else f"(o.eff_f * MIN({int(query.gpus)}, o.gpu_count))"
    else:
        key = "o." + SORTS[query.sort]
    sql = f"SELECT {OFFER_COLUMNS} FROM offers o{where} ORDER BY {key} {order}, o.offer_id {order} LIMIT ? OFFSET ?"
    rows = conn.execute(sql, [*params, query.limit, query.offset]).fetchall()
    return total, with_providers(conn, rows)


def with_providers(conn: sqlite3.Connection, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    providers = sorted({r["provider"] for r in rows})
    by_address: dict[str, sqlite3.Row] = {}
    if providers:
        found = conn.execute(f"SELECT {PROVIDER_COLUMNS} FROM providers WHERE address IN "
                             f"({','.join('?' for _ in providers)})", providers).fetchall()
        by_address = {r["address"]: r for r in found}
    out = []
    for r in rows:
        p = by_address.get(r["provider"])
        out.append({**dict(r), "rep": p["rep"] if p else None, "settled_reports": p["settled_reports"] if p else 0,
                    "p_rentals": p["rentals"] if p else 0})
    return out


def get_offer(conn: sqlite3.Connection, offer_id: int) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {OFFER_COLUMNS}, o.history FROM offers o WHERE o.offer_id = ?", (offer_id,)).fetchone()
    return None if row is None else with_providers(conn, [row])[0]


def facets(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name, col in (("gpu_models", "gpu_model"), ("regions", "region")):
        rows = conn.execute(f"SELECT {col}, COUNT(*) FROM offers WHERE active = 1 GROUP BY {col} ORDER BY {col}")
        out[name] = [{"name": r[0], "count": int(r[1])} for r in rows.fetchall()]
    return out


def provider_offers(conn: sqlite3.Connection, provider: str) -> list[dict[str, Any]]:
    rows = conn.execute(f"SELECT {OFFER_COLUMNS} FROM offers o WHERE o.provider = ? ORDER BY o.offer_id",
                        (provider,)).fetchall()
    return with_providers(conn, rows)


def rep_of(row: Any) -> dict[str, Any] | None:
    return json.loads(row["rep"]) if row["rep"] else None
