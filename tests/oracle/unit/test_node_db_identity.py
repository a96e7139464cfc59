"""A node database used against a different chain or market is refused at start, saying what to do."""

from __future__ import annotations

import pytest

from oracle.errors import ConfigError
from oracle.node.app import create_app
from oracle.node.settings import NodeSettings

KEY = "0x" + "11" * 32


def _settings(tmp_path, chain_id: int, market: str) -> NodeSettings:
    return NodeSettings(dev_mode=True, private_key=KEY, chain_id=chain_id, market_address=market,
                        db_path=tmp_path / "node.sqlite3")


def test_a_node_database_is_refused_for_another_chain_or_market_with_what_to_do(tmp_path):
    create_app(_settings(tmp_path, 31337, "0x" + "42" * 20))
    create_app(_settings(tmp_path, 31337, "0x" + "42" * 20))  # the same deployment again: fine
    with pytest.raises(ConfigError, match=r"belongs to chain 31337 .* not chain 84532 .*own db_path"):
        create_app(_settings(tmp_path, 84532, "0x" + "42" * 20))
    with pytest.raises(ConfigError, match=r"belongs to chain 31337 market 0x4242.*not chain 31337 market 0x4343"):
        create_app(_settings(tmp_path, 31337, "0x" + "43" * 20))
