"""The demo's flow: a fresh anvil, keys, the deployment, then one whole rental (``run_rental``)
with its steps in order. Chain steps are in :mod:`oracle.demo.steps`; processes in
:mod:`oracle.demo.nodes`; what is watched while it runs in :mod:`oracle.demo.watch`."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from oracle.demo import steps
from oracle.demo.base import DEPLOYER, GPU_MODEL, PROVIDER, RENTER, DemoError, DemoOptions, DemoResult, Ui
from oracle.demo.nodes import start_agent, start_end_answer, start_nodes, start_web
from oracle.demo.procs import DemoKeys, _cli_env, _Processes, _start_chain, _stop, _Telemetry, _telemetry, make_keys
from oracle.demo.steps import DemoChain, run_step
from oracle.demo.watch import (
    _BlockTicker,
    _challenges,
    _final_sequence,
    _fund_node_keys,
    _knows,
    _node_report,
    _settlement_state,
    _SettlementWatch,
    _wait_nodes,
)
from oracle.node.settings import LOCAL_CHAIN_IDS


def run_demo(options: DemoOptions, ui: Ui | None = None) -> DemoResult:
    """Run the whole rental on a fresh local anvil; the summary's numbers come from the chain
    and the nodes."""
    from oracle.localchain import LocalChain

    ui = ui or Ui(False)
    started = time.monotonic()
    state = options.state_dir.resolve()
    if state.exists():
        LocalChain(state / "chain").stop()
        shutil.rmtree(state)
    state.mkdir(parents=True)
    chain = LocalChain(state / "chain")
    procs = _Processes()
    txs: dict[str, list[str]] = {}
    try:
        telemetry = _telemetry(options, ui)
        rpc = _start_chain(chain, ui)
        deployments = state / "deployments.json"
        demo_chain = DemoChain(rpc, deployments, lambda label, tx: txs.setdefault(label, []).append(tx))

        ui.step(f"creating encrypted keystores: {options.nodes} oracle nodes + the telemetry agent",
                "gpurent oracle keys new node-1.json")
        keys = make_keys(state, options.nodes, fast_kdf=options.fast_kdf)

        ui.step(f"deploying GpuRentMarket + TestStablecoin, oracle quorum {options.threshold} of {options.nodes}",
                f"gpurent deploy --dev-account {DEPLOYER} --signer … --threshold {options.threshold}")
        deployment = run_step("gpurent deploy", steps.deploy, demo_chain, keys.node_addresses, options.threshold)
        ui.note(f"market {deployment['market']}  tUSD {deployment['payment_token']}")

        summary = run_rental(demo_chain, deployment, keys, options, state, ui, procs, telemetry)
        result = DemoResult(summary=summary, transactions=txs, wall_s=time.monotonic() - started, rpc_url=rpc,
                            deployments=deployments)
        if options.keep_running:
            result.cleanup = lambda: (procs.stop_all(), chain.stop())
        return result
    finally:
        if options.keep_running:
            _stop(procs.agent)
        else:
            procs.stop_all()
            chain.stop()


def run_rental(chain: DemoChain, deployment: dict[str, Any], keys: DemoKeys, options: DemoOptions, state: Path,
               ui: Ui, procs: _Processes, telemetry: _Telemetry | None = None) -> dict[str, Any]:
    """Stake, offer, rent, run nodes and agent, settle, end, finalize, withdraw; the summary.

    Works against any anvil-backed deployment whose signer set is ``keys.node_addresses`` (the
    local demo's own, or one made by ``brownie run scripts/deploy.py``).
    """
    from oracle.localchain import _rpc, dev_address

    telemetry = telemetry or _telemetry(options, ui)
    use_nvml, duration_s, backdate_s = telemetry.use_nvml, telemetry.duration_s, telemetry.backdate_s
    rpc = chain.rpc
    agent_address = keys.agent_address
    provider, renter = dev_address(PROVIDER), dev_address(RENTER)
    sym = deployment.get("payment_token_symbol") or "tokens"

    # -- provider -------------------------------------------------------------------------------
    ui.step(f"provider {provider[:10]}… stakes {options.stake} {sym}",
            f"gpurent provider stake {options.stake} --dev-account {PROVIDER}")
    run_step("gpurent provider stake", steps.stake, chain, options.stake)
    ui.step(f"provider lists an H100 offer at {options.price_per_gpu_hour} {sym}/GPU-hour + "
            f"{options.price_per_kwh} {sym}/kWh in {options.region}",
            f"gpurent provider offer create --gpu-model '{GPU_MODEL}' --price-per-gpu-hour "
            f"{options.price_per_gpu_hour} --region {options.region} --agent {agent_address[:10]}…")
    offer = run_step("gpurent provider offer create", steps.list_offer, chain, options, agent_address)
    provider_before = steps.account_state(chain, provider)
    reputation_before = provider_before["reputation"]

    # -- renter ---------------------------------------------------------------------------------
    ui.step(f"renter {renter[:10]}… opens a rental of offer {offer.offer_id} with a {options.budget} {sym} budget",
            f"gpurent rent open {offer.offer_id} --budget {options.budget} --dev-account {RENTER}")
    renter_before = steps.account_state(chain, renter)["wallet_balance"]
    box, no_box = None, None
    if options.container:  # the renter's workload, run by the provider daemon (oracle.demo.container)
        from oracle.demo.container import for_demo, open_rental_with_workload

        box, no_box = for_demo(ui, state, rpc=rpc, deployment=deployment, password_file=keys.password_file,
                               agent_keystore=keys.agent_keystore, env=_cli_env(state), use_nvml=use_nvml,
                               fast_kdf=options.fast_kdf)
        procs.container = box
    if box is not None:
        rental_id = run_step("gpurent rent open --image … --provider-url …", open_rental_with_workload, chain, box,
                             offer, options.budget)
    else:
        rental_id = run_step("gpurent rent open", steps.open_rental, chain, offer.offer_id, options.budget).rental_id

    # -- oracle nodes ---------------------------------------------------------------------------
    # The nodes know only the chain: they learn the rental from its RentalStarted event, meter
    # what the agent sends, and settle by themselves (their keys pay the gas).
    for tx in _fund_node_keys(rpc, keys.node_addresses):
        chain.record("fund node keys", tx)
    local = int(deployment["chain_id"]) in LOCAL_CHAIN_IDS
    ui.step(f"starting {len(keys.node_keystores)} attestation nodes (uvicorn subprocesses) that follow the chain "
            f"and settle every {options.settle_interval_s:g} s by themselves",
            "gpurent oracle run --config node-1.config.json")
    # confirmations 0 only on a local dev chain; elsewhere a block is mined on top
    nodes = start_nodes(deployment, keys, options, state, rpc, procs, confirmations=0 if local else 1)
    node_urls, node_procs, node_logs = nodes.urls, nodes.procs, nodes.logs
    ui.note("nodes: " + ", ".join(f"{u} ({a[:10]}…)" for u, a in zip(node_urls, keys.node_addresses)))
    web_url = start_web(rpc, chain.deployments, node_urls, state, procs)
    ui.note(f"web app (gpurent web): {web_url} (market, rental {rental_id} live; log web.log)")

    # -- start the rental and the agent ---------------------------------------------------------
    ui.step(f"provider starts rental {rental_id}; the nodes learn it from the RentalStarted event",
            f"gpurent provider start {rental_id} --dev-account {PROVIDER}")
    # The rental starts at a planned chain time (in the past for a time-compressed replay).
    planned_start = int(time.time() + 5 - backdate_s)
    head = int(_rpc(rpc, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
    if planned_start <= head:
        raise DemoError(f"the chain's clock ({head}) is past the planned rental start ({planned_start}); "
                        "a time-compressed replay needs an anvil whose clock starts in the past")
    _rpc(rpc, "evm_setNextBlockTimestamp", [planned_start])
    started_at = run_step("gpurent provider start", steps.start_rental, chain, rental_id)
    if box is not None:  # Active now: the daemon runs the workload; the renter reads its output
        box.watch(rental_id)
    # The chain's clock back to now from the next block on (the rental keeps its start in the
    # past): a report settles only once its periodEnd, a sample's time, is not after the block time.
    _rpc(rpc, "evm_setNextBlockTimestamp", [max(started_at + 1, int(time.time()))])
    _rpc(rpc, "evm_mine")  # now (anvil keeps the clock offset of the block it mines); with
    # confirmations, also the block on top that makes RentalStarted confirmed
    _wait_nodes(node_urls, node_procs, node_logs, f"learn rental {rental_id} from RentalStarted", 20.0,
                lambda url: _knows(url, rental_id))
    # Launch the agent so that its first sample lands on the rental's start (interpreter
    # start-up takes a moment; a replay that starts earlier is held back by not_before_ms).
    # NVML samples are live, so there the agent starts just after the rental did.
    lead_s = -0.5 if use_nvml else 2.5
    while time.time() < started_at + backdate_s - lead_s:
        time.sleep(0.05)
    ui.step("telemetry agent signs batches and sends them to every node",
            "gpurent agent run --config agent.config.json")
    agent_log = start_agent(deployment, keys, options, state, rental_id, node_urls, started_at, use_nvml=use_nvml,
                            procs=procs)
    # Challenges draw from blocks and open from the first block after their deadline; this chain
    # only mines on transactions, so a block a second while the rental runs.
    ticker = _BlockTicker(rpc) if options.challenges else None

    # -- metering, and the nodes' settlements as they land on chain -----------------------------
    watch = _SettlementWatch(rpc, deployment["market"], rental_id, deployment["block_number"],
                             keys.node_addresses, deployment.get("payment_token_decimals", 18), sym)
    deadline = time.monotonic() + duration_s / (1 if use_nvml else options.speed) + 60
    live = list(range(len(node_urls)))
    stopped_node = None
    stop_sent = False
    sampling_since: float | None = None  # NVML: when the agent began sampling (its start-up line)
    ui.step("the nodes meter the telemetry; their settlement loops land quorum-signed reports on chain")
    with ui.bar("GPU time settled on chain", duration_s) as update:
        def progress() -> None:
            for line in watch.poll():
                ui.note(line)
            update(watch.available_gpu_seconds,
                   f"GPU time settled on chain: report {watch.sequence}" if watch.sequence else None)

        while True:
            finished = procs.agent.poll() is not None
            if use_nvml and sampling_since is None and f": rental {rental_id} (chain" in agent_log.read_text(errors="replace"):
                sampling_since = time.time()  # a loaded machine may take seconds to start the agent
            if use_nvml and not finished and not stop_sent and sampling_since is not None \
                    and time.time() - sampling_since >= duration_s:
                procs.agent.send_signal(signal.SIGTERM)  # once: it then spools and drains
                stop_sent = True
            if (options.stop_node_after_s is not None and stopped_node is None
                    and (time.time() - started_at - backdate_s) * (1 if use_nvml else options.speed)
                    >= options.stop_node_after_s):
                index = live.pop()
                stopped_node = node_urls[index]
                _stop(node_procs[index])
                ui.note(f"stopped node {stopped_node}: the other {len(live)} still reach the threshold")
            progress()
            if finished:
                break
            if time.monotonic() > deadline:
                raise DemoError(f"the agent did not finish in time; see {agent_log}")
            time.sleep(0.5)
        if procs.agent.returncode != 0:
            raise DemoError(f"the agent exited with {procs.agent.returncode}; see {agent_log}")
        live_urls = [node_urls[i] for i in live]
        live_logs = [node_logs[i] for i in live]
        final_sequence = _final_sequence(live_urls, rental_id, int(deployment["signer_set"]["threshold"]), live_logs)

        if ticker is not None:
            ticker.stop()  # before the end: its timestamp is set explicitly
        # -- end; the nodes still settle the final report (periodEnd <= endedAt, within the grace)
        ui.step(f"renter ends rental {rental_id}; the nodes settle its final report (sequence {final_sequence})",
                f"gpurent rent end {rental_id} --dev-account {RENTER}")
        head = int(_rpc(rpc, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        # chain clock back to now (a second on, so endedAt is not before the last sample's second)
        _rpc(rpc, "evm_setNextBlockTimestamp", [max(head + 1, int(time.time()) + 1)])
        run_step("gpurent rent end", steps.end_rental, chain, rental_id)
        answer_log = None
        if options.challenges:
            ticker = _BlockTicker(rpc)  # the end challenge draws from the blocks after the end
            ui.step("the provider answers the rental's end challenge (full-memory, the renter's job is gone)",
                    "gpurent agent answer --config agent.config.json")
            answer_log = start_end_answer(state, procs)
        wait_s = 3 * options.settle_interval_s + len(node_urls) * options.submit_stagger_s + 30
        until = time.monotonic() + wait_s
        while watch.sequence < final_sequence:
            if time.monotonic() > until:
                raise DemoError(
                    f"the nodes did not settle report {final_sequence} of rental {rental_id} within {wait_s:.0f} s "
                    f"(chain has {watch.sequence}); read the node logs: "
                    + ", ".join(str(p) for p in live_logs) + "; " + _settlement_state(live_urls))
            for proc, log in zip([node_procs[i] for i in live], live_logs):
                if proc.poll() is not None:
                    raise DemoError(f"a node exited with {proc.returncode}; see {log}")
            time.sleep(0.5)
            progress()
    if answer_log is not None:
        _wait_end_challenge(procs.agent, answer_log, [node_urls[i] for i in live], rental_id)
        ticker.stop()
    settlements = watch.settlements
    container = box.finish(rental_id) if box is not None else ({"skipped": no_box} if no_box else None)
    slashes = None
    if options.challenges:  # a failed challenge is a fault the nodes slash within the grace (demo.faults)
        from oracle.demo.faults import read_slashes, wait_for_slash

        if options.cheat:
            ui.step("the nodes slash the CHALLENGE_FAILED fault on chain (quorum-signed fault report)")
        slashes = wait_for_slash(lambda: read_slashes(watch.w3, watch.market, rental_id, deployment["block_number"]),
                                 timeout_s=90.0 if options.cheat else 0.0)
        for entry in slashes:
            ui.note(f"fault {entry['fault_id']} {entry['kind_name']}: {entry['amount'] / watch.scale:.6f} {sym} "
                    f"of stake slashed (tx {entry['tx'][:12]}…)")
    if not settlements:
        raise DemoError(f"no usage report was settled; see the node logs in {state}")

    # -- finalize, withdraw ----------------------------------------------------------------------
    # Finalization waits the rental's settlement grace (faults can still slash it until then);
    # the demo's anvil skips that time instead of waiting a day.
    grace_s = int(steps.status(chain, rental_id)["terms"]["settlement_grace_s"])
    ui.step(f"anvil skips the rental's {grace_s} s settlement grace (late faults could still slash it until then)",
            f"cast rpc evm_increaseTime {grace_s}")
    _rpc(rpc, "evm_increaseTime", [grace_s + 1])
    _rpc(rpc, "evm_mine", [])
    ui.step("provider finalizes: unused budget back to the renter, collateral released, reputation updated",
            f"gpurent provider finalize {rental_id} --dev-account {PROVIDER}")
    finalized = run_step("gpurent provider finalize", steps.finalize, chain, rental_id)
    ui.step("provider withdraws earnings, renter withdraws the refund",
            f"gpurent provider withdraw --dev-account {PROVIDER}; gpurent rent withdraw --dev-account {RENTER}")
    provider_withdrawal, renter_withdrawal = run_step("gpurent provider/rent withdraw", steps.withdraw_both, chain)

    # -- summary: read back ---------------------------------------------------------------------
    ui.step("reading the summary back from the chain and the nodes",
            f"gpurent rent status {rental_id}; gpurent provider status {provider[:10]}…")
    status = steps.status(chain, rental_id)
    provider_after = steps.account_state(chain, provider)
    renter_after = steps.account_state(chain, renter)
    usage = status["settled_usage"]
    rep = provider_after["reputation"]
    return {
        "rental_id": rental_id,
        "offer_id": offer.offer_id,
        "chain_id": deployment["chain_id"],
        "market": deployment["market"],
        "provider": provider,
        "renter": renter,
        "telemetry_source": "nvml" if use_nvml else f"replay {options.trace.name} at {options.speed:g}x",
        "status": status["status"],
        "gpu_hours": status["available_gpu_seconds"] / 3600,
        "available_gpu_seconds": status["available_gpu_seconds"],
        "busy_gpu_hours": usage["busy_gpu_seconds"] / 3600,
        "busy_gpu_seconds": usage["busy_gpu_seconds"],
        "energy_kwh": usage["energy_millijoules"] / 3.6e9,
        "energy_millijoules": usage["energy_millijoules"],
        "carbon_g": usage["carbon_milligrams"] / 1000,
        "carbon_milligrams": usage["carbon_milligrams"],
        "uptime_bps": status["uptime_bps"],
        "settled_reports": len(settlements),
        "settle_txs": [entry["tx"] for entry in settlements],
        "settlements": settlements,
        "settled_by": sorted({entry["node"] for entry in settlements if entry["node"]}),
        "last_sequence": status["sequence"],
        "budget": status["budget"],
        "paid_from_escrow": status["paid"],
        "protocol_fee": finalized.fee,
        "paid_to_provider": provider_withdrawal.amount,
        "refunded_to_renter": renter_withdrawal.amount,
        "provider_balance_before": provider_before["wallet_balance"],
        "provider_balance_after": provider_after["wallet_balance"],
        "renter_balance_before": renter_before,
        "renter_balance_after": renter_after["wallet_balance"],
        "provider_reputation_before": reputation_before,
        "provider_reputation_score_bps": rep["score_bps"],
        "provider_reputation": rep,
        "provider_completed_rentals": rep["completed_rentals"],
        "provider_attested_gpu_seconds": rep["attested_gpu_seconds"],
        "node_report": _node_report(live_urls, rental_id, usage["sequence"]),
        "challenges": _challenges(live_urls, rental_id, int(status["ended_at"])) if options.challenges else None,
        "challenges_in_report": {"passed": usage.get("challenges_passed"), "failed": usage.get("challenges_failed")},
        "decimals": deployment["payment_token_decimals"],
        "symbol": deployment["payment_token_symbol"],
        "stopped_node": stopped_node,
        "container": container,
        "slashes": slashes,
        "slash_payout": _slash_payout(watch, rental_id, deployment["block_number"]) if slashes else None,
        "node_names": watch.nodes,
        "quorum": f"{deployment['signer_set']['threshold']} of {len(deployment['signer_set']['signers'])}",
    }


def _wait_end_challenge(answer: subprocess.Popen, answer_log: Path, urls: list[str], rental_id: int,
                        timeout_s: float = 120.0) -> None:
    """Until ``gpurent agent answer`` has answered the end challenge and the nodes' quorum decided it."""
    until = time.monotonic() + timeout_s
    while answer.poll() is None:
        if time.monotonic() > until:
            raise DemoError(f"`gpurent agent answer` did not finish in {timeout_s:.0f} s; see {answer_log}")
        time.sleep(0.5)
    if answer.returncode != 0:
        raise DemoError(f"`gpurent agent answer` exited with {answer.returncode}; see {answer_log}")
    while not ((_challenges(urls, rental_id) or {}).get("end") or {}).get("quorum"):
        if time.monotonic() > until:
            raise DemoError(f"the nodes did not decide rental {rental_id}'s end challenge in {timeout_s:.0f} s")
        time.sleep(0.5)


def _slash_payout(watch: _SettlementWatch, rental_id: int, from_block: int) -> dict[str, int] | None:
    from oracle.demo.faults import read_slash_payout

    return read_slash_payout(watch.market, rental_id, from_block)
