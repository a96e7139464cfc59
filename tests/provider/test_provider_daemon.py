"""The issue-10 scenario against a real dockerd, a real anvil market and the daemon as a process:
a renter opens a rental with a workload and an SSH key, gets a shell, runs a command, reads the
logs, copies files; a host process on its GPU is a FOREIGN_PROCESS fault; a stranger is refused; a second rental cannot see the first; the daemon is
SIGKILLed and restarted and re-adopts the containers with telemetry continuing; ending the
rentals removes the containers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from oracle.chain.client import MarketClient
from oracle.localchain import dev_address, dev_key
from oracle.provider.client import ProviderClient

from .daemon_harness import FAKE_GPUS, gpurent, make_daemon, wait_for, write_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RENTER, SECOND_RENTER, STRANGER = 2, 3, 4
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl renter@laptop"


def spool_next_seq(state: Path, rental_id: int) -> int:
    import sqlite3

    path = state / "daemon" / f"spool-rental-{rental_id}.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT next_seq FROM chains WHERE rental_id=?", (str(rental_id),)).fetchone()
    return int(row[0]) if row else 0


def test_renter_gets_a_shell_and_logs_stranger_refused_restart_readopts_end_removes(
        tmp_path, market, docker_url, busybox_image, docker_client):
    rpc, deployments = market
    g = lambda *a, **k: gpurent(rpc, deployments, *a, **k)  # noqa: E731
    deployment = g("deploy", "--signer", dev_address(7), "--signer", dev_address(8), "--signer", dev_address(9),
                   dev=0)
    password_file, wallet, agent, agent_address = write_keys(tmp_path)
    g("provider", "stake", "300", dev=1)
    offer = g("provider", "offer", "create", "--gpu-model", "NVIDIA H100 80GB HBM3",
              "--gpu-count", "2", "--price-per-gpu-hour", "2", "--region", "SE",
              "--agent", agent_address, dev=1)["offer"]["offer_id"]
    daemon = make_daemon(tmp_path, rpc=rpc, deployment=deployment, docker_url=docker_url,
                         nodes=["http://127.0.0.1:9"], password_file=password_file, wallet=wallet, agent=agent)
    daemon.start()
    try:
        key_file = tmp_path / "id_ed25519.pub"
        key_file.write_text(SSH_KEY + "\n")

        # -- the renter opens a rental with a workload; time from `rent open` to a shell ---------
        t0 = time.monotonic()
        opened = g("rent", "open", str(offer), "--budget", "5", "--image", busybox_image, "--cmd",
                   "sh -c 'echo first-workload-up; i=0; while :; do i=$((i+1)); echo tick-$i; sleep 1; done'", "--env", "MODE=train",
                   "--ssh-key", str(key_file), "--provider-url", daemon.url, dev=RENTER)
        rental = opened["rental_id"]
        assert opened["workload"]["accepted"] and opened["workload"]["workload_hash"] == opened["workload_hash"]
        terms = MarketClient.from_private_key(rpc, dev_key(RENTER), deployment["market"]).rental_terms(rental)
        assert "0x" + bytes(terms["workloadHash"]).hex() == opened["workload_hash"]  # committed on chain
        wait_for("the daemon to start the rental", lambda: g("rent", "status", str(rental))["status"] == "Active",
                 log=daemon.log)
        shell = wait_for("a shell", lambda: _try(lambda: g("rent", "ssh", str(rental), json_out=False, dev=RENTER,
                                                          input="echo $MODE-ok; hostname\nexit\n")))
        time_to_shell_s = time.monotonic() - t0
        print(f"time from `rent open` to a shell: {time_to_shell_s:.1f} s")
        assert "train-ok" in shell and f"rental-{rental}" in shell
        assert time_to_shell_s < 60
        out = g("rent", "exec", str(rental), "--", "sh", "-c", "echo $MODE; hostname", json_out=False, dev=RENTER)
        assert out.split() == ["train", f"rental-{rental}"]

        # The renter's key is installed; connection details are sealed to the renter.
        assert g("rent", "exec", str(rental), "--", "cat", "/root/.ssh/authorized_keys", json_out=False,
                 dev=RENTER).strip() == SSH_KEY
        details = g("rent", "connection", str(rental), dev=RENTER)
        assert details["ready"] and details["endpoint"] == daemon.url and details["gpus"] == [FAKE_GPUS[0]]

        # A shell (line by line through the daemon; `cd` is kept), logs, and copies in and out.
        shell = g("rent", "ssh", str(rental), dev=RENTER, json_out=False,
                  input="cd /root\necho made-in-shell > shell.txt\nls; tty\nexit\n")
        assert "shell.txt" in shell and "/dev/pts/" in shell  # a real TTY, `cd` kept between lines
        logs = g("rent", "logs", str(rental), dev=RENTER, json_out=False)
        assert "first-workload-up" in logs
        follow = ProviderClient(daemon.url, bytes.fromhex(dev_key(RENTER)[2:]), deployment["chain_id"],
                                deployment["market"]).logs(rental, follow=True, tail=0)
        ticks: set[str] = set()
        for chunk in follow:  # new lines arrive while the workload runs
            ticks.update(t for t in chunk.decode().split() if t.startswith("tick-"))
            if len(ticks) >= 2:
                break
        follow.close()
        local_in = tmp_path / "input.txt"
        local_in.write_text("dataset\n")
        g("rent", "cp", str(rental), str(local_in), ":/root/", dev=RENTER, json_out=False)
        g("rent", "cp", str(rental), ":/root/shell.txt", str(tmp_path / "out.txt"), dev=RENTER, json_out=False)
        assert (tmp_path / "out.txt").read_text() == "made-in-shell\n"
        assert g("rent", "exec", str(rental), "--", "cat", "/root/input.txt", json_out=False, dev=RENTER) == "dataset\n"
        exit_code = g("rent", "exec", str(rental), "--", "sh", "-c", "exit 3", dev=RENTER, expect=3, json_out=False)
        assert exit_code == ""

        # -- energy attribution: NVML lists the container's own process and a host process on the
        # rented GPU; only the host process is FOREIGN_PROCESS (kind 7), once confirmed.
        [first] = docker_client.containers.list()
        own_pid, host_pid = first.attrs["State"]["Pid"], os.getpid()
        (tmp_path / "gpu-processes.txt").write_text(f"0 {own_pid}\n0 {host_pid}\n")
        wait_for("the foreign process fault", lambda: "fault=FOREIGN_PROCESS" in daemon.log(), log=daemon.log)
        faults = [line for line in daemon.log().splitlines() if "fault=FOREIGN_PROCESS" in line]
        assert len(faults) == 1 and f"fault rental={rental} kind=7" in faults[0]
        assert f"pid {host_pid} in the host" in faults[0] and f"pid {own_pid} " not in faults[0]
        # The evidence is in the signed telemetry: samples of the rented GPU carry the count, so the
        # nodes leave that time unbilled and file FOREIGN_PROCESS themselves.
        stamped = wait_for("foreign use in the signed telemetry", lambda: foreign_samples(tmp_path, rental),
                           log=daemon.log)
        assert {(s.gpu, s.foreign_process_count) for s in stamped} == {(0, 1)}
        (tmp_path / "gpu-processes.txt").write_text("")

        # -- a stranger's key is refused everywhere ---------------------------------------------
        for args in (("exec", str(rental), "--", "id"), ("logs", str(rental)), ("connection", str(rental)),
                     ("ssh", str(rental))):
            refused = g("rent", *args, "--provider-url", daemon.url, dev=STRANGER, expect=1, json_out=False)
            assert "refused" in refused and "is not the renter of rental" in refused

        # -- a second rental on the same host cannot see the first one --------------------------
        second = g("rent", "open", str(offer), "--budget", "5", "--image", busybox_image, "--preset", "shell",
                   "--provider-url", daemon.url, dev=SECOND_RENTER)["rental_id"]
        wait_for("the second rental to start", lambda: g("rent", "status", str(second))["status"] == "Active",
                 log=daemon.log)
        wait_for("a second shell", lambda: _try(lambda: g("rent", "exec", str(second), "--", "true",
                                                         json_out=False, dev=SECOND_RENTER)) is not None)
        assert g("rent", "connection", str(second), dev=SECOND_RENTER)["gpus"] == [FAKE_GPUS[1]]
        assert g("rent", "exec", str(second), "--", "ls", "-a", "/root", json_out=False,
                 dev=SECOND_RENTER).split() == [".", ".."]
        processes = g("rent", "exec", str(second), "--", "ps", "-o", "args", json_out=False, dev=SECOND_RENTER)
        assert "first-workload-up" not in processes
        g("rent", "exec", str(rental), "--", "id", dev=SECOND_RENTER, expect=1, json_out=False)  # not its rental

        # -- SIGKILL the daemon mid-rental: containers live on, the restart re-adopts them ----------
        containers = {c.name: c.id for c in docker_client.containers.list()}
        seq_before = wait_for("telemetry batches to be spooled", lambda: spool_next_seq(tmp_path, rental) or None)
        daemon.kill()
        assert {c.name: c.id for c in docker_client.containers.list()} == containers
        daemon.start()
        assert "re-adopted 2 container(s)" in daemon.log()
        wait_for("telemetry to continue after the restart",
                 lambda: spool_next_seq(tmp_path, rental) > seq_before + 2, log=daemon.log)
        assert "resumes at batch" in daemon.log()
        assert g("rent", "exec", str(rental), "--", "cat", "/root/shell.txt", json_out=False,
                 dev=RENTER) == "made-in-shell\n"
        assert {c.name: c.id for c in docker_client.containers.list()} == containers

        # -- ending the rentals removes their containers -----------------------------------------
        g("rent", "end", str(rental), dev=RENTER)
        wait_for("the first container to go", lambda: len(docker_client.containers.list(all=True, ignore_removed=True)) == 1,
                 log=daemon.log)
        g("rent", "exec", str(rental), "--", "true", dev=RENTER, expect=1, json_out=False)
        g("rent", "end", str(second), dev=SECOND_RENTER)
        wait_for("every container to go", lambda: docker_client.containers.list(all=True, ignore_removed=True) == [], log=daemon.log)
        log = daemon.log()
        assert "rental_ended rental=%d" % rental in log and "container_removed=True" in log
    finally:
        daemon.stop()


def foreign_samples(state: Path, rental_id: int) -> list:
    """Samples with foreign GPU use in the rental's spooled, signed batches (read beside the daemon)."""
    import sqlite3

    from oracle.telemetry.batches import TelemetryBatch

    path = state / "daemon" / f"spool-rental-{rental_id}.sqlite3"
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT body FROM batches WHERE rental_id=? ORDER BY seq", (str(rental_id),)).fetchall()
    batches = [TelemetryBatch.from_wire_bytes(bytes(body)) for (body,) in rows]
    for batch in batches:
        batch.verify_signature()
    return [s for batch in batches for s in batch.samples if s.foreign_process_count]


def _try(fn):
    try:
        return fn()
    except AssertionError:
        return None

