"""The daemon's acceptance policy on a real market and dockerd: `accept = "manual"` waits for the
provider to start the rental by hand and then runs the workload; an image outside
`allowed_images` is refused when the renter uploads it, before anything runs; a spec that is not
the one committed on chain is refused; a rental that committed to no workload is not run."""

from __future__ import annotations

import pytest

from oracle.chain.client import MarketClient
from oracle.localchain import dev_address, dev_key
from oracle.provider import ProviderError
from oracle.provider.client import ProviderClient
from oracle.provider.workload import WorkloadSpec

from .daemon_harness import gpurent, make_daemon, wait_for, write_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RENTER = 2


def test_manual_acceptance_runs_the_workload_once_the_provider_starts_it_and_unlisted_images_are_refused(
        tmp_path, market, docker_url, busybox_image, docker_client):
    rpc, deployments = market
    g = lambda *a, **k: gpurent(rpc, deployments, *a, **k)  # noqa: E731
    deployment = g("deploy", "--signer", dev_address(7), dev=0)
    password_file, wallet, agent, agent_address = write_keys(tmp_path)
    g("provider", "stake", "300", dev=1)
    offer = g("provider", "offer", "create", "--gpu-model", "NVIDIA H100 80GB HBM3",
              "--gpu-count", "2", "--price-per-gpu-hour", "2", "--region", "SE",
              "--agent", agent_address, dev=1)["offer"]["offer_id"]
    daemon = make_daemon(tmp_path, rpc=rpc, deployment=deployment, docker_url=docker_url,
                         nodes=["http://127.0.0.1:9"], password_file=password_file, wallet=wallet, agent=agent,
                         extra='accept = "manual"\nallowed_images = ["gpurent-test-*"]')
    daemon.start()
    try:
        refused = g("rent", "open", str(offer), "--budget", "1", "--image", "miner/xmrig:latest",
                    "--provider-url", daemon.url, dev=RENTER, expect=1, json_out=False)
        assert "image miner/xmrig:latest is not allowed by this provider" in refused

        # The commitment binds: a spec other than the one whose hash the rental committed is refused.
        renter = MarketClient.from_private_key(rpc, dev_key(RENTER), deployment["market"])
        committed = WorkloadSpec(image=busybox_image, preset="shell")
        swapped = WorkloadSpec(image=busybox_image, cmd=["sh", "-c", "echo something else"])
        bound, _ = renter.open_rental(offer, 1, 1_000_000, workload_hash=committed.workload_hash())
        assert bytes(renter.rental_terms(bound)["workloadHash"]) == committed.workload_hash()
        client = ProviderClient(daemon.url, bytes.fromhex(dev_key(RENTER)[2:]), deployment["chain_id"],
                                deployment["market"])
        with pytest.raises(ProviderError, match="not the rental's committed workloadHash"):
            client.upload_workload(bound, swapped, agent_address)
        g("rent", "end", str(bound), dev=RENTER)

        # A rental without a workload is refused with a reason (never run unconfined or guessed).
        bare = g("rent", "open", str(offer), "--budget", "1", dev=RENTER)["rental_id"]
        wait_for("the refusal", lambda: f"refused rental={bare} why=the rental committed to no workload"
                 in daemon.log(), log=daemon.log)
        g("rent", "end", str(bare), dev=RENTER)

        rental = g("rent", "open", str(offer), "--budget", "1", "--image", busybox_image, "--preset", "shell",
                   "--provider-url", daemon.url, dev=RENTER)["rental_id"]
        wait_for("the daemon to wait for the provider", lambda: "accept = manual" in daemon.log(), log=daemon.log)
        assert g("rent", "status", str(rental))["status"] == "Open" and docker_client.containers.list() == []

        g("provider", "start", str(rental), dev=1)
        wait_for("the workload to run", lambda: "container_started rental=%d" % rental in daemon.log(),
                 log=daemon.log)
        assert g("rent", "exec", str(rental), "--", "hostname", json_out=False, dev=RENTER).strip() == \
            f"rental-{rental}"
        g("rent", "end", str(rental), dev=RENTER)
        wait_for("the container to go", lambda: docker_client.containers.list(all=True, ignore_removed=True) == [], log=daemon.log)
    finally:
        daemon.stop()
