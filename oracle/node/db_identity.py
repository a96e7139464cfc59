"""A node database belongs to one deployment: the first start records its chain id and market;
a later start with another chain or market is refused with what to do (a database full of another
market's batches and signed reports would otherwise be served, and re-signed, for this one)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from oracle.errors import ConfigError

_SCHEMA = ("CREATE TABLE IF NOT EXISTS node_deployment (id INTEGER PRIMARY KEY CHECK (id = 1), "
           "chain_id TEXT NOT NULL, market TEXT NOT NULL)")


def check_db_deployment(db_path: str | Path, chain_id: int, market: str) -> None:
    """Record (first start) or check (every later start) the deployment ``db_path`` serves."""
    if str(db_path) == ":memory:":
        return
    conn = sqlite3.connect(str(db_path), timeout=30)
    try:
        with conn:
            conn.execute(_SCHEMA)
            row = conn.execute("SELECT chain_id, market FROM node_deployment WHERE id = 1").fetchone()
            if row is None:
                conn.execute("INSERT INTO node_deployment (id, chain_id, market) VALUES (1, ?, ?)",
                             (str(int(chain_id)), market.lower()))
                return
    finally:
        conn.close()
    if (int(row[0]), row[1]) != (int(chain_id), market.lower()):
        raise ConfigError(
            f"the node database {db_path} belongs to chain {row[0]} market {row[1]}, not chain {chain_id} "
            f"market {market}: give this deployment its own db_path (a fresh file), or move {db_path} aside "
            "if that deployment is gone (a restarted local chain with `gpurent chain start --fresh`)")
