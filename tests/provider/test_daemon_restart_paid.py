"""The daemon SIGKILLed mid-rental and restarted, with real attestation nodes on anvil: the
container is re-adopted, telemetry resumes on the same hash chain, and the rental keeps being
paid without a fault (the restart is a short gap: unpaid time, not downtime). The provider is
told when the budget runs low, and the daemon answers the nodes' proof-of-GPU challenges."""

from __future__ import annotations

import sqlite3
import time

import pytest


from .daemon_harness import gpurent, make_daemon, node_keys, start_nodes, stop_all, wait_for, write_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RENTER = 2


def test_daemon_killed_mid_rental_readopts_and_the_rental_is_still_paid_without_a_fault(
        tmp_path, market, docker_url, busybox_image, docker_client):
    from web3 import Web3

    from oracle.chain.artifacts import load_abi

    rpc, deployments = market
    g = lambda *a, **k: gpurent(rpc, deployments, *a, **k)  # noqa: E731
    password_file, wallet, agent, agent_address = write_keys(tmp_path)
    nodes = node_keys(tmp_path)
    signers = [a for _, address in nodes for a in ("--signer", address)]
    deployment = g("deploy", *signers, dev=0)
    g("provider", "stake", "300", dev=1)
    offer = g("provider", "offer", "create", "--gpu-model", "NVIDIA H100 80GB HBM3",
              "--gpu-count", "1", "--price-per-gpu-hour", "2", "--region", "SE",
              "--agent", agent_address, dev=1)["offer"]["offer_id"]
    node_procs, node_urls = start_nodes(tmp_path, rpc=rpc, deployment=deployment, keys=nodes,
                                        password_file=password_file, challenges="dev")
    daemon = make_daemon(tmp_path, rpc=rpc, deployment=deployment, docker_url=docker_url, nodes=node_urls,
                         password_file=password_file, wallet=wallet, agent=agent,
                         extra="budget_low_fraction = 0.9999",  # warn as soon as anything is paid
                         challenges="numpy")  # the daemon answers the nodes' proof-of-GPU challenges
    market_contract = Web3(Web3.HTTPProvider(rpc)).eth.contract(address=deployment["market"],
                                                                 abi=load_abi("GpuRentMarket"))
    try:
        daemon.start()
        rental = g("rent", "open", str(offer), "--budget", "5", "--image", busybox_image, "--preset", "shell",
                   "--provider-url", daemon.url, dev=RENTER)["rental_id"]
        wait_for("the rental to start", lambda: g("rent", "status", str(rental))["status"] == "Active",
                 log=daemon.log)
        settled = lambda: g("rent", "status", str(rental))  # noqa: E731
        before = wait_for("two settlements before the kill", lambda: (s := settled())["sequence"] >= 2 and s,
                          timeout_s=60, log=daemon.log)
        container = docker_client.containers.list()[0].id

        daemon.kill()
        time.sleep(2)
        daemon.start()
        assert "re-adopted 1 container(s)" in daemon.log()
        assert docker_client.containers.list()[0].id == container

        after = wait_for("settlements after the restart",
                         lambda: (s := settled())["sequence"] >= before["sequence"] + 3 and s, timeout_s=90,
                         log=daemon.log)
        assert after["paid"] > before["paid"]
        assert after["settled_usage"]["fault_flags"] == 0, after["settled_usage"]
        assert market_contract.events.Slashed.get_logs(from_block=0) == []
        assert f"budget_low rental={rental}" in daemon.log()

        def judged() -> bool:  # the start challenge (drawn from the first block after the start)
            for i in range(len(nodes)):
                with sqlite3.connect(tmp_path / f"node-{i + 1}.sqlite3") as db:
                    if not db.execute("SELECT 1 FROM pog_verdicts WHERE rental_id=?", (str(rental),)).fetchall():
                        return False
            return True

        wait_for("every node's verdict on the start challenge", judged, timeout_s=90, log=daemon.log)
        g("rent", "end", str(rental), dev=RENTER)
        wait_for("the container to go", lambda: docker_client.containers.list(all=True, ignore_removed=True) == [], log=daemon.log)
    finally:
        daemon.stop()
        stop_all(node_procs)
    # Each node challenged the rented GPU at the start and judged the daemon's answer.
    for i in range(len(nodes)):
        with sqlite3.connect(tmp_path / f"node-{i + 1}.sqlite3") as db:
            verdicts = db.execute("SELECT outcome FROM pog_verdicts WHERE rental_id=?", (str(rental),)).fetchall()
        assert verdicts and {v for (v,) in verdicts} == {"passed"}, (i, verdicts)
