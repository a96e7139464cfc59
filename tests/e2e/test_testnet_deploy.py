"""Testnet deployment, rehearsed on an anvil that claims Sepolia's chain id (11155111): both
`brownie run scripts/deploy.py --network sepolia-rpc` (account from Brownie's encrypted store,
RPC from $SEPOLIA_RPC_URL) and `gpurent deploy --rpc URL --keystore FILE` write the deployment
file, and the CLI then runs a whole rental against each deployment."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TRACE, ChainReader
from e2e_checks import check_rental_against_chain

from oracle.demo import DemoChain, DemoOptions, Ui, _Processes, make_keys, run_rental
from oracle.deployment import load_deployment
from oracle.keys import CHEAPEST_ACCEPTED_KDF
from oracle.localchain import LocalChain, dev_address, dev_key

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEPOLIA = 11155111
TRACE_SECONDS = 110
PASSWORD = "e2e-" + secrets.token_hex(8)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sepolia_anvil(tmp_path: Path):
    chain = LocalChain(tmp_path / "chain")
    # Clock 15 minutes back, so the time-compressed replay's rental can start in the past.
    state = chain.start(port=_free_port(), chain_id=SEPOLIA, timestamp=int(time.time()) - 900)
    try:
        yield state
    finally:
        chain.stop()


def _rental(rpc: str, deployments: Path, keys, state: Path) -> dict:
    deployment = load_deployment(SEPOLIA, deployments).to_json()
    # Challenges off: outside a local dev chain a node only issues production-size challenges, which
    # need a GPU (the dev-size ones are refused there); proof of GPU has its own tests.
    options = DemoOptions(state_dir=state, trace=TRACE, speed=20.0, settle_interval_s=1.5, stake="500", budget="2",
                          challenges=False)
    procs = _Processes()
    try:
        return run_rental(DemoChain(rpc, deployments, lambda *_: None), deployment, keys, options, state, Ui(False),
                          procs)
    finally:
        procs.stop_all()


def test_brownie_deploy_to_sepolia_chain_id_then_cli_rental(tmp_path: Path, sepolia_anvil) -> None:
    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, 3, fast_kdf=True)
    deployments = tmp_path / "deployments.json"

    # Brownie's encrypted account store holds the deployer (here anvil's dev key 0).
    from eth_account import Account

    account_id = f"gpurent-e2e-{secrets.token_hex(4)}"
    account_file = Path.home() / ".brownie" / "accounts" / f"{account_id}.json"
    account_file.parent.mkdir(parents=True, exist_ok=True)
    account_file.write_text(json.dumps(Account.encrypt(dev_key(0), PASSWORD, **CHEAPEST_ACCEPTED_KDF)))
    try:
        env = {**os.environ, "SEPOLIA_RPC_URL": sepolia_anvil.url, "GPURENT_DEPLOYER": account_id,
               "GPURENT_DEPLOYER_PASSWORD": PASSWORD, "GPURENT_DEPLOYMENTS": str(deployments),
               "GPURENT_SIGNERS": ",".join(keys.node_addresses), "GPURENT_THRESHOLD": "2"}
        brownie = str(Path(sys.executable).parent / "brownie")
        out = subprocess.run([brownie, "run", "scripts/deploy.py", "--network", "sepolia-rpc"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    finally:
        account_file.unlink(missing_ok=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "Traceback" not in out.stdout + out.stderr
    assert "Verify on https://sepolia.etherscan.io" in out.stdout

    deployment = load_deployment(SEPOLIA, deployments)
    assert deployment.tool == "brownie run scripts/deploy.py"
    assert deployment.network == "sepolia" and deployment.test_stablecoin
    assert deployment.signer_set["threshold"] == 2
    assert sorted(deployment.signer_set["signers"]) == sorted(keys.node_addresses)
    assert f"https://sepolia.etherscan.io/address/{deployment.market}" in out.stdout

    # A testnet has no faucet for the test stablecoin: anyone may mint it.
    reader = ChainReader(sepolia_anvil.url, deployment.market, deployment.payment_token)
    for index in (1, 2):
        tx = reader.token.functions.mint(dev_address(index), 10_000 * 10**6).transact({"from": dev_address(0)})
        reader.w3.eth.wait_for_transaction_receipt(tx)

    summary = _rental(sepolia_anvil.url, deployments, keys, state)
    check_rental_against_chain(reader, summary, TRACE_SECONDS)


def test_cli_deploy_with_keystore_to_sepolia_chain_id_then_cli_rental(tmp_path: Path, sepolia_anvil) -> None:
    from oracle.keys import new_keystore

    state = tmp_path / "state"
    state.mkdir()
    keys = make_keys(state, 3, fast_kdf=True)
    deployments = tmp_path / "deployments.json"
    deployer_keystore = tmp_path / "deployer.json"
    new_keystore(deployer_keystore, PASSWORD, private_key=bytes.fromhex(dev_key(0)[2:]), **CHEAPEST_ACCEPTED_KDF)

    argv = [sys.executable, "-m", "oracle.cli.main", "deploy", "--rpc", sepolia_anvil.url, "--keystore",
            str(deployer_keystore), "--deployments", str(deployments), "--threshold", "2"]
    argv += [a for address in keys.node_addresses for a in ("--signer", address)]
    env = {**os.environ, "GPURENT_PASSWORD": PASSWORD}
    out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    deployment = load_deployment(SEPOLIA, deployments)
    assert deployment.tool == "gpurent deploy" and deployment.network == "sepolia"
    assert deployment.deployer == dev_address(0)
    assert f"https://sepolia.etherscan.io/address/{deployment.market}" in out.stdout
    assert sorted(deployment.signer_set["signers"]) == sorted(keys.node_addresses)

    reader = ChainReader(sepolia_anvil.url, deployment.market, deployment.payment_token)
    summary = _rental(sepolia_anvil.url, deployments, keys, state)
    check_rental_against_chain(reader, summary, TRACE_SECONDS)
