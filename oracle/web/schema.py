"""The derived tables of the web index (:mod:`oracle.web.derive` fills them from the events)."""

#: bump when SCHEMA or what apply() derives changes: stored indexes are then rebuilt from their events
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offers (
    offer_id INTEGER PRIMARY KEY, provider TEXT NOT NULL, active INTEGER NOT NULL, version INTEGER NOT NULL,
    gpu_model TEXT NOT NULL, gpu_count INTEGER NOT NULL, memory_mib INTEGER NOT NULL, payment_token TEXT NOT NULL,
    price_gpu_hour TEXT NOT NULL, price_kwh TEXT NOT NULL, pgh_f REAL NOT NULL, pkwh_f REAL NOT NULL,
    typical_power_w INTEGER, eff TEXT, eff_f REAL NOT NULL, effh_f REAL NOT NULL, region TEXT NOT NULL,
    grid INTEGER NOT NULL, max_duration INTEGER NOT NULL, min_uptime INTEGER NOT NULL, max_gap INTEGER NOT NULL,
    agent TEXT NOT NULL, created_tx TEXT, created_block INTEGER, created_ts INTEGER, history TEXT NOT NULL,
    -- the provider's standing, copied here (kept in step by _sync_offers) so sorting needs no join
    score_bps INTEGER NOT NULL DEFAULT 0, uptime_bps INTEGER NOT NULL DEFAULT -1,
    ch_pass INTEGER NOT NULL DEFAULT 0, ch_fail INTEGER NOT NULL DEFAULT 0, slash_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS offers_provider ON offers (provider);
CREATE INDEX IF NOT EXISTS offers_by_id ON offers (active, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_gpu_model ON offers (active, gpu_model, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_gpu_count ON offers (active, gpu_count, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_memory_mib ON offers (active, memory_mib, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_pgh_f ON offers (active, pgh_f, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_pkwh_f ON offers (active, pkwh_f, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_eff_f ON offers (active, eff_f, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_effh_f ON offers (active, effh_f, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_region ON offers (active, region, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_grid ON offers (active, grid, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_max_duration ON offers (active, max_duration, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_score_bps ON offers (active, score_bps, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_uptime_bps ON offers (active, uptime_bps, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_ch_pass ON offers (active, ch_pass, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_ch_fail ON offers (active, ch_fail, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_slash_count ON offers (active, slash_count, offer_id);
CREATE INDEX IF NOT EXISTS offers_by_model_region ON offers (gpu_model, region);
CREATE TABLE IF NOT EXISTS providers (
    address TEXT PRIMARY KEY, rep TEXT, score_bps INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0, abandoned INTEGER NOT NULL DEFAULT 0, slash_count INTEGER NOT NULL DEFAULT 0,
    rentals INTEGER NOT NULL DEFAULT 0, settled_reports INTEGER NOT NULL DEFAULT 0,
    ch_pass INTEGER NOT NULL DEFAULT 0, ch_fail INTEGER NOT NULL DEFAULT 0,
    avail_gs INTEGER NOT NULL DEFAULT 0, rented_gs INTEGER NOT NULL DEFAULT 0, uptime_bps INTEGER,
    stake TEXT, stake_block INTEGER
);
CREATE TABLE IF NOT EXISTS rentals (
    rental_id INTEGER PRIMARY KEY, offer_id INTEGER NOT NULL, renter TEXT NOT NULL, provider TEXT NOT NULL,
    status INTEGER NOT NULL, opened_block INTEGER NOT NULL,
    avail_gs INTEGER NOT NULL DEFAULT 0, rented_gs INTEGER NOT NULL DEFAULT 0,
    ch_pass INTEGER NOT NULL DEFAULT 0, ch_fail INTEGER NOT NULL DEFAULT 0, reports INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rentals_renter ON rentals (renter);
CREATE INDEX IF NOT EXISTS rentals_provider ON rentals (provider);
CREATE TABLE IF NOT EXISTS settlements (
    rental_id INTEGER NOT NULL, sequence INTEGER NOT NULL, block INTEGER NOT NULL, log_index INTEGER NOT NULL,
    tx_hash TEXT NOT NULL, ts INTEGER, payment TEXT NOT NULL, paid_after TEXT NOT NULL, method TEXT,
    submitter TEXT, report TEXT, signers TEXT, PRIMARY KEY (rental_id, sequence)
);
CREATE TABLE IF NOT EXISTS slashes (
    rental_id INTEGER NOT NULL, fault_id INTEGER NOT NULL, provider TEXT NOT NULL, kind INTEGER NOT NULL,
    token TEXT NOT NULL, amount TEXT NOT NULL, block INTEGER NOT NULL, tx_hash TEXT NOT NULL, ts INTEGER,
    fault TEXT, PRIMARY KEY (rental_id, fault_id)
);
CREATE INDEX IF NOT EXISTS slashes_provider ON slashes (provider);
CREATE TABLE IF NOT EXISTS ledger (
    block INTEGER NOT NULL, log_index INTEGER NOT NULL, kind TEXT NOT NULL, account TEXT NOT NULL,
    token TEXT, amount TEXT NOT NULL, rental_id INTEGER, tx_hash TEXT NOT NULL, ts INTEGER,
    PRIMARY KEY (block, log_index, kind)
);
CREATE INDEX IF NOT EXISTS ledger_account ON ledger (account, kind);
CREATE TABLE IF NOT EXISTS timelock_ops (
    id TEXT PRIMARY KEY, target TEXT, value TEXT, data TEXT, predecessor TEXT, delay INTEGER,
    scheduled_ts INTEGER, ready_at INTEGER, state TEXT NOT NULL, scheduled_tx TEXT, done_tx TEXT, block INTEGER
);
"""

DERIVED_TABLES = ("kv", "offers", "providers", "rentals", "settlements", "slashes", "ledger", "timelock_ops")
