"""Shared fixtures for the Brownie tests of the gpurent contracts."""

import pytest
from eth_account import Account

ORACLE_KEYS = [f"0x{(0xA11CE000 + i):064x}" for i in range(8)]


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Every test starts from the module's deployed state; nothing leaks between tests."""


@pytest.fixture(scope="session")
def oracle_keys():
    return ORACLE_KEYS[:5]


@pytest.fixture(scope="session")
def oracle_accounts(oracle_keys):
    return [Account.from_key(k) for k in oracle_keys]


@pytest.fixture(scope="session")
def spare_oracle_keys():
    """Keys that are not in the initial signer set (rotation tests)."""
    return ORACLE_KEYS[5:]


@pytest.fixture(scope="module")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def stranger(accounts):
    return accounts[9]


def pytest_configure(config):
    # Brownie's own isolation fixtures call rpc.snapshot/revert and warn about it on every test.
    config.addinivalue_line("filterwarnings", "ignore:rpc\\.(snapshot|revert) should not:FutureWarning")
