"""A renter and a provider use the web pages in a real browser, every transaction through the
injected EIP-1193 wallet, and every number on the pages is checked against the chain (web3).

The tests of this module share one chain and run in order: the market as listed, the operators
page with a pending governance change, the rental's whole life, then the pages' accessibility and
the provider's own offers."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from .chain_view import ChainView
from .conftest import VENDOR, Stack, _wait
from .pages import TIMEOUT_MS, axe_violations, connect, numbers, one, run_action, visit

from oracle.units import format_amount

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUDGET = "5"
TOKEN_DECIMALS = 6


@pytest.fixture(scope="module")
def chain(stack: Stack) -> ChainView:
    return ChainView(stack.rpc, stack.deployment["market"], stack.deployment["payment_token"])


def tusd(units: int) -> str:
    return format_amount(units, TOKEN_DECIMALS, "tUSD")


def offer_rows(page: Any) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all("tbody tr[data-offer]", "rs => rs.map(r => r.dataset.offer)")]


def wait_rows(page: Any, expected: list[int]) -> None:
    page.wait_for_function(
        "(ids) => JSON.stringify([...document.querySelectorAll('tbody tr[data-offer]')].map(r => +r.dataset.offer)) === JSON.stringify(ids)",
        arg=expected, timeout=TIMEOUT_MS)


def test_renter_finds_the_offer_by_filtering_and_sees_what_the_budget_buys(stack: Stack, chain: ChainView,
                                                                           open_as: Any, shots: Any) -> None:
    page = open_as(stack.renter)
    visit(page, f"{stack.web}/#/market", "tbody tr[data-offer]", "market")
    rented, pricier, other = stack.offers["rented"], stack.offers["pricier"], stack.offers["other_model"]
    # default sort: effective price per GPU-hour, cheapest first
    assert sorted(offer_rows(page)) == sorted([rented, pricier, other])

    # every listed number against the chain's getOffer
    for offer_id in (rented, pricier, other):
        on_chain = chain.offer(offer_id)
        row = f"tr[data-offer='{offer_id}']"
        assert one(page, row, "gpu_count")[0] == on_chain["gpuCount"]
        assert one(page, row, "memory_mib")[0] == on_chain["memoryMib"]
        raw, text = one(page, row, "price_per_gpu_hour")
        assert (raw, text) == (on_chain["pricePerGpuHour"], tusd(on_chain["pricePerGpuHour"]))
        raw, text = one(page, row, "price_per_kwh")
        assert (raw, text) == (on_chain["pricePerKwh"], tusd(on_chain["pricePerKwh"]))
        assert one(page, row, "grid_intensity_g_per_kwh")[0] == on_chain["gridIntensityGPerKwh"]
        assert one(page, row, "max_duration_s")[0] == on_chain["maxDurationSeconds"]
        assert one(page, row, "score_bps")[0] == chain.market.functions.reputationScore(stack.provider).call()

    # filter on the model column: the A100 offer goes
    page.select_option("#filter-gpu_model", "NVIDIA H100 80GB HBM3")
    wait_rows(page, [rented, pricier])
    # filter on the region column: only the Swedish H100 stays
    page.select_option("#filter-region", "SE")
    wait_rows(page, [rented])
    page.select_option("#filter-region", "")
    # a maximum price per GPU-hour (human units, parsed exactly) drops the pricier one
    page.fill("#filter-price_per_gpu_hour", "4")
    wait_rows(page, [rented])
    page.fill("#filter-price_per_gpu_hour", "")
    wait_rows(page, [rented, pricier])
    # sorting on a column, both ways
    page.click("button[data-sort='price_per_gpu_hour']")
    page.wait_for_selector("th[data-col='price_per_gpu_hour'][aria-sort='ascending']", timeout=TIMEOUT_MS)
    wait_rows(page, [rented, pricier])
    page.click("button[data-sort='price_per_gpu_hour']")
    page.wait_for_selector("th[data-col='price_per_gpu_hour'][aria-sort='descending']", timeout=TIMEOUT_MS)
    wait_rows(page, [pricier, rented])
    assert page.locator("th[aria-sort]").count() == 1

    # "this budget buys about N hours": budget / (price at typical power x GPUs), from the offer's terms
    page.fill("[data-testid='budget']", BUDGET)
    page.wait_for_function(f"document.querySelector(\"tr[data-offer='{rented}'] [data-field='budget_hours']\").dataset.raw !== ''",
                           timeout=TIMEOUT_MS)
    hours_x100, text = one(page, f"tr[data-offer='{rented}']", "budget_hours")
    on_chain = chain.offer(rented)
    effective, _ = one(page, f"tr[data-offer='{rented}']", "effective_price_per_gpu_hour")
    typical_w, _ = one(page, f"tr[data-offer='{rented}']", "typical_power_w")
    assert effective == on_chain["pricePerGpuHour"] + on_chain["pricePerKwh"] * typical_w // 1000
    assert hours_x100 == 5 * 10**TOKEN_DECIMALS * 100 // (effective * on_chain["gpuCount"])
    shown = re.fullmatch(r"about ([0-9.]+) h", text)
    assert shown and abs(float(shown.group(1)) - hours_x100 / 100) < 0.1, text
    assert not page.js_errors, page.js_errors
    shots(page, "market")


def test_operators_page_shows_node_health_signer_set_params_and_the_pending_change(stack: Stack, chain: ChainView,
                                                                                  open_as: Any, shots: Any) -> None:
    page = open_as(stack.renter)
    visit(page, f"{stack.web}/#/network", "[data-testid='pending'] tbody tr", "network")
    # each node as its /healthz says, all in the signer set
    health = page.eval_on_selector_all("[data-testid='nodes'] tbody tr",
                                       "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent, r.cells[5].textContent])")
    assert sorted(url for url, _, _ in health) == sorted(stack.node_urls)
    assert all(ok == "ok" and member == "yes" for _, ok, member in health), health
    version, threshold, signers = chain.market.functions.signerSet().call()
    assert one(page, "#signers", "version")[0] == version and one(page, "#signers", "threshold")[0] == threshold
    shown = page.eval_on_selector_all("[data-testid='signers'] tbody tr td:first-child", "cs => cs.map(c => c.textContent)")
    assert sorted(shown) == sorted(signers) == sorted(stack.keys.node_addresses)
    # a parameter against the chain: the protocol fee of new rentals
    fee_bps = one(page, "[data-testid='params']", "protocol_fee_bps")[0]
    assert fee_bps == chain.call("params")["protocolFeeBps"]
    # the scheduled change: its call, and its ready time as the timelock keeps it
    row = page.eval_on_selector("[data-testid='pending'] tbody tr",
                                "r => [r.cells[0].textContent, r.querySelector('[data-field=ready_at]').dataset.raw, r.querySelector('[data-tx]').dataset.tx]")
    assert row[0].startswith("setGpuModel(") and int(row[1]) == stack.governance["ready_at"]
    assert row[2].lower() == stack.governance["tx"].lower()
    shots(page, "network")
    # the page follows the chain: a change scheduled while it is open shows up without a reload
    from oracle.chain.governance import TimelockGovernance
    from oracle.demo.base import DEPLOYER

    ctx = stack.demo_chain.ctx(DEPLOYER)
    gov = TimelockGovernance(ctx.sender, stack.demo_chain.deployment.timelock, stack.demo_chain.deployment.market)
    gov.schedule(gov.operation("setGpuModel", b"NVIDIA GB200".ljust(32, b"\0"), 1200, 186_000))
    page.wait_for_function("document.querySelectorAll(\"[data-testid='pending'] tbody tr\").length === 2",
                           timeout=TIMEOUT_MS)


def test_renter_opens_watches_ends_and_withdraws_while_provider_sees_rental_and_earnings(
        stack: Stack, chain: ChainView, open_as: Any, shots: Any) -> None:
    from oracle.demo.base import DemoOptions
    from oracle.demo.nodes import start_agent
    from oracle.demo.procs import _Processes
    from oracle.demo.watch import _final_sequence
    from oracle.localchain import dev_key

    offer_id = stack.offers["rented"]
    renter = open_as(stack.renter)
    sent_to_server: list[str] = []
    renter.on("request", lambda r: sent_to_server.append(r.post_data or "") if "/api/" in r.url else None)
    visit(renter, f"{stack.web}/#/market", "tbody tr[data-offer]")
    connect(renter)
    renter.fill("[data-testid='budget']", BUDGET)
    renter.click(f"[data-testid='rent-{offer_id}']")
    renter.fill("#rent input[name='budget']", BUDGET)
    balance_before = chain.balance(stack.renter)
    run_action(renter, "open-rental")
    renter.wait_for_url("**/#/rental/*", timeout=TIMEOUT_MS)
    rental_id = int(renter.url.rsplit("/", 1)[1])
    on_chain = chain.rental(rental_id)
    assert on_chain["renter"] == stack.renter and on_chain["budget"] == 5 * 10**TOKEN_DECIMALS
    assert chain.balance(stack.renter) == balance_before - on_chain["budget"]
    # the wallet signed approve + openRental; the page asked for nothing else that signs
    sent = [e for e in renter.evaluate("window.__walletLog") if e["method"] == "eth_sendTransaction"]
    assert len(sent) in (1, 2) and all(e["params"][0]["from"].lower() == stack.renter.lower() for e in sent)
    renter.wait_for_selector("[data-field='status'][data-raw='1']", timeout=TIMEOUT_MS)
    assert one(renter, "[data-testid='rental-facts']", "budget") == (on_chain["budget"], tusd(on_chain["budget"]))

    # -- the provider sees it waiting for start (with its deadline) and starts it from the page
    provider = open_as(stack.provider)
    visit(provider, f"{stack.web}/#/provider", "h1")
    connect(provider)
    provider.wait_for_selector(f"[data-testid='start-{rental_id}']", timeout=TIMEOUT_MS)
    deadline_raw, _ = numbers(provider, "[data-testid='waiting']")["start_deadline"][0]
    assert deadline_raw == on_chain["startDeadline"]
    shots(provider, "provider-waiting")
    run_action(provider, f"start-{rental_id}")
    started = chain.rental(rental_id)
    assert started["status"] == 2 and started["startedAt"] > 0

    # -- the agent beside the GPU replays the H100 trace in real time; the nodes settle as it runs
    options = DemoOptions(state_dir=stack.state, speed=1.0, challenges=False)
    agent_procs = _Processes()
    agent_log = start_agent(stack.deployment, stack.keys, options, stack.state, rental_id, stack.node_urls,
                            started["startedAt"], use_nvml=False, procs=agent_procs)
    try:
        renter.wait_for_selector("[data-field='status'][data-raw='2']", timeout=TIMEOUT_MS)
        renter.wait_for_function("+document.querySelector('#chart-paid').dataset.points >= 2", timeout=60_000)
        first = int(renter.get_attribute("#chart-paid", "data-points"))
        first_paid = int(renter.get_attribute("[data-testid='chart-paid-latest']", "data-raw"))
        shots(renter, "rental-running")
        renter.wait_for_function(f"+document.querySelector('#chart-paid').dataset.points >= {first + 3}", timeout=60_000)
        # the chart grew, and its latest cost is what the chain paid up to that report
        grown = int(renter.get_attribute("#chart-paid", "data-points"))
        assert grown >= first + 3
        for key in ("power_w", "utilization_bps", "energy_mj"):
            assert int(renter.get_attribute(f"#chart-{key}", "data-points")) >= first + 3
        latest_paid = int(renter.get_attribute("[data-testid='chart-paid-latest']", "data-raw"))
        assert latest_paid > first_paid
        assert latest_paid in chain.paid_after(rental_id).values()
        # budget left and when it runs out
        remaining, remaining_text = one(renter, "[data-testid='rental-facts']", "remaining")
        assert remaining == on_chain["budget"] - int(numbers(renter, "[data-testid='rental-facts']")["paid"][0][0])
        assert remaining_text == tusd(remaining)
        assert renter.locator("[data-testid='runs-out']").count() == 1
        shots(renter, "rental-charts")
        # the rental page while it runs (charts, live regions, actions) passes axe too
        assert axe_violations(renter, str(VENDOR / "axe.min.js")) == []
        # a top-up through the wallet raises the escrowed budget by exactly that much
        renter.fill("[data-testid='top-up'] input[name='amount']", "1.5")
        run_action(renter, "top-up")
        assert chain.rental(rental_id)["budget"] == on_chain["budget"] + 1_500_000
        renter.wait_for_selector(f"[data-field='budget'][data-raw='{on_chain['budget'] + 1_500_000}']", timeout=TIMEOUT_MS)
    finally:
        if agent_procs.agent is not None and agent_procs.agent.poll() is None:
            agent_procs.agent.send_signal(signal.SIGTERM)  # it spools and drains what it read
    _wait("the agent to drain and exit", lambda: agent_procs.agent.poll() is not None, 60, agent_log)
    final = _final_sequence(stack.node_urls, rental_id, 2, [])

    # -- the renter ends it; the nodes still settle the final report
    renter.wait_for_selector("[data-testid='end-rental-submit']", timeout=TIMEOUT_MS)
    run_action(renter, "end-rental")
    assert chain.rental(rental_id)["status"] == 3
    _wait(f"report {final} settled", lambda: chain.rental(rental_id)["sequence"] >= final, 60)

    # -- after the settlement grace (anvil skips it), finalize from the provider's dashboard
    grace = chain.call("rentalTerms", rental_id)["settlementGrace"]
    stack.rpc_call("evm_increaseTime", [grace + 1])
    stack.rpc_call("evm_mine")
    visit(provider, f"{stack.web}/#/provider", f"[data-testid='finalize-{rental_id}']")
    run_action(provider, f"finalize-{rental_id}")
    done = chain.rental(rental_id)
    assert done["status"] == 5
    (fin,) = chain.events("RentalFinalized", rentalId=rental_id)
    fee, refund = fin["args"]["fee"], fin["args"]["refund"]

    # -- the renter withdraws the refund through the wallet
    visit(renter, f"{stack.web}/#/rental/{rental_id}", "[data-field='status'][data-raw='5']")
    renter.wait_for_selector("[data-testid='withdraw-submit']", timeout=TIMEOUT_MS)
    before = chain.balance(stack.renter)
    assert chain.withdrawable(stack.renter) == refund == done["budget"] - done["paid"]
    run_action(renter, "withdraw")
    assert chain.balance(stack.renter) - before == refund and chain.withdrawable(stack.renter) == 0

    # -- every number on the rental page against the chain
    visit(renter, f"{stack.web}/#/rental/{rental_id}", "[data-field='status'][data-raw='5']", "rental")
    facts = numbers(renter, "[data-testid='rental-facts']")
    settled = chain.settlements(rental_id)
    report = chain.report(rental_id, settled[-1].tx_hash)
    expect = {"budget": done["budget"], "paid": done["paid"], "remaining": done["budget"] - done["paid"],
              "refund": refund, "available_gpu_seconds": done["availableGpuSeconds"],
              "busy_gpu_seconds": report["busyGpuSeconds"], "energy_mj": report["energyMillijoules"],
              "carbon_mg": report["carbonMilligrams"],
              # attested GPU-seconds over the rented GPU-seconds, from getRental (as `gpurent rent status`)
              "uptime_bps": min(10_000, done["availableGpuSeconds"] * 10_000
                                // (done["gpuCount"] * (done["endedAt"] - done["startedAt"]))),
              "started_at": done["startedAt"], "ended_at": done["endedAt"], "status": done["status"]}
    for field, value in expect.items():
        assert facts[field][0][0] == value, (field, facts[field], value)
    for field in ("budget", "paid", "remaining", "refund"):
        assert facts[field][0][1] == tusd(expect[field]), field
    rows = renter.eval_on_selector_all("[data-testid='settlements'] tbody tr",
                                       "rs => rs.map(r => [r.cells[0].textContent, r.querySelector('[data-tx]').dataset.tx])")
    assert [(int(seq), tx.lower()) for seq, tx in rows] == [(s.sequence, s.tx_hash.lower()) for s in settled]
    payments = [raw for raw, _ in numbers(renter, "[data-testid='settlements']")["payment"]]
    assert payments == [s.payment for s in settled] and sum(payments) == done["paid"]
    shots(renter, "rental-finalized")

    # -- the provider's dashboard: stake, the rental among the finalized ones, earnings
    visit(provider, f"{stack.web}/#/provider", "[data-testid='stake']", "provider")
    stake = chain.stake(stack.provider)
    for field, key in (("active", "active"), ("locked", "locked"), ("unbonding", "unbonding"), ("listed_gpus", "listedGpus")):
        assert one(provider, "[data-testid='stake']", field)[0] == stake[key], field
    assert one(provider, "[data-testid='stake']", "active")[1] == tusd(stake["active"])
    assert provider.locator(f"[data-testid='done-rentals'] a[href='#/rental/{rental_id}']").count() == 1
    assert axe_violations(provider, str(VENDOR / "axe.min.js")) == []
    earned, earned_text = one(provider, "[data-testid='earnings']", "earned")
    assert earned == done["paid"] - fee and earned_text == tusd(earned)
    assert one(provider, "[data-testid='earnings']", "paid_gross")[0] == done["paid"]
    assert one(provider, "[data-testid='withdrawable']", "amount")[0] == chain.withdrawable(stack.provider) == earned
    shots(provider, "provider")

    # no private key ever reached the server (nor the page: the wallet holds none either)
    keys = [dev_key(i).lower().removeprefix("0x") for i in range(10)]
    assert not any(k in body.lower() for body in sent_to_server for k in keys)
    assert not renter.js_errors and not provider.js_errors, (renter.js_errors, provider.js_errors)
    stack.offers["rental_id"] = rental_id


def test_market_and_my_rentals_show_the_record_the_rental_left_on_chain(stack: Stack, chain: ChainView,
                                                                        open_as: Any) -> None:
    rental_id = stack.offers.get("rental_id", 1)
    done = chain.rental(rental_id)
    settled = chain.settlements(rental_id)
    last = chain.report(rental_id, settled[-1].tx_hash)
    page = open_as(stack.renter)
    visit(page, f"{stack.web}/#/market", "tbody tr[data-offer]")
    row = f"tr[data-offer='{stack.offers['rented']}']"
    # uptime: attested GPU-seconds over the rented GPU-seconds (start to end), from getRental as the CLI does
    uptime = min(10_000, done["availableGpuSeconds"] * 10_000 // (done["gpuCount"] * (done["endedAt"] - done["startedAt"])))
    assert one(page, row, "uptime_bps")[0] == uptime
    assert one(page, row, "score_bps")[0] == chain.market.functions.reputationScore(stack.provider).call() > 0
    record = page.inner_text(f"{row} .verification")
    assert record.startswith(f"{last['challengesPassed']} passed, {last['challengesFailed']} failed"), record
    # my rentals: the rental with its budget and what it paid; nothing left to withdraw
    visit(page, f"{stack.web}/#/rentals", "h1")
    connect(page)
    page.wait_for_selector("[data-testid='my-rentals'] tbody tr a", timeout=TIMEOUT_MS)
    mine = numbers(page, "[data-testid='my-rentals']")
    assert mine["budget"][0] == (done["budget"], tusd(done["budget"]))
    assert mine["paid"][0] == (done["paid"], tusd(done["paid"]))
    assert [raw for raw, _ in numbers(page, "[data-testid='withdrawable']")["amount"]] == [chain.withdrawable(stack.renter)] == [0]
    # the page follows the chain: a rental opened elsewhere (the CLI's path) shows up without a reload
    from oracle.actions import rentals
    from oracle.demo import steps
    from oracle.demo.base import RENTER

    opened = steps.open_rental(stack.demo_chain, stack.offers["pricier"], "1").rental_id
    page.wait_for_selector(f"[data-testid='my-rentals'] a[href='#/rental/{opened}']", timeout=TIMEOUT_MS)
    rentals.cancel_rental(stack.demo_chain.ctx(RENTER), opened)


def test_receipt_download_is_the_last_settled_report(stack: Stack, chain: ChainView, open_as: Any, tmp_path: Path) -> None:
    rental_id = stack.offers.get("rental_id", 1)
    page = open_as(stack.renter)
    visit(page, f"{stack.web}/#/rental/{rental_id}", "[data-testid='receipt']")
    with page.expect_download() as info:
        page.click("[data-testid='receipt']")
    path = tmp_path / "receipt.json"
    info.value.save_as(path)
    receipt = json.loads(path.read_text())
    last = chain.settlements(rental_id)[-1]
    report = chain.report(rental_id, last.tx_hash)
    assert receipt["rental_id"] == rental_id and receipt["sequence"] == last.sequence
    assert receipt["energy_mj"] == report["energyMillijoules"] and receipt["carbon_mg"] == report["carbonMilligrams"]
    assert receipt["telemetry_hash"].lower() == "0x" + bytes(report["telemetryHash"]).hex()
    assert receipt["settlement_tx"].lower() == last.tx_hash.lower()
    assert len(receipt["signers"]) >= 2


# (the rental page is checked by the rental test above, while the rental runs)
@pytest.mark.parametrize("route,ready", [
    ("#/market", "tbody tr[data-offer]"),
    ("#/rentals", "[data-testid='my-rentals']"),
    ("#/provider", "[data-testid='stake']"),
    ("#/network", "[data-testid='nodes']"),
])
def test_page_has_no_serious_or_critical_accessibility_violation(stack: Stack, open_as: Any, shots: Any,
                                                                 route: str, ready: str) -> None:
    page = open_as(stack.provider if route == "#/provider" else stack.renter)
    visit(page, f"{stack.web}/{route}", "h1", None)
    if route in ("#/rentals", "#/provider"):
        connect(page)
    page.wait_for_selector(ready, timeout=TIMEOUT_MS)
    violations = axe_violations(page, str(VENDOR / "axe.min.js"))
    assert violations == [], json.dumps(violations, indent=1)
    # every control is reachable by keyboard and labelled
    unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, button')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unlabeled == []


def test_market_works_from_the_keyboard(stack: Stack, open_as: Any) -> None:
    """Skip link first, then sorting and opening the rent form with Tab and Enter alone."""
    page = open_as(stack.renter)
    visit(page, f"{stack.web}/#/market", "tbody tr[data-offer]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(40):  # to the "Region" sort button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.sort") == "region":
            break
    else:
        raise AssertionError("the Region sort button is not reachable with Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("th[data-col='region'][aria-sort='ascending']", timeout=TIMEOUT_MS)
    rent = page.locator("tbody tr[data-offer] button").first
    rent.focus()
    page.keyboard.press("Enter")
    # the rent form opens with the focus in its budget field
    page.wait_for_selector("#rent", timeout=TIMEOUT_MS)
    assert page.evaluate("document.activeElement.name") == "budget"


def test_provider_stakes_lists_and_withdraws_an_offer_through_the_wallet(stack: Stack, chain: ChainView, open_as: Any) -> None:
    page = open_as(stack.provider)
    visit(page, f"{stack.web}/#/provider", "h1")
    connect(page)
    page.wait_for_selector("[data-testid='create-offer']", state="attached", timeout=TIMEOUT_MS)
    count_before = chain.market.functions.offerCount().call()
    # more stake through the wallet (approve + stake)
    active = chain.stake(stack.provider)["active"]
    page.fill("[data-testid='stake-form'] input[name='stake']", "10")
    run_action(page, "stake-form")
    assert chain.stake(stack.provider)["active"] == active + 10_000_000
    page.wait_for_selector(f"[data-testid='stake'] [data-field='active'][data-raw='{active + 10_000_000}']", timeout=TIMEOUT_MS)
    page.click("details summary")
    form = "[data-testid='create-offer']"
    page.select_option(f"{form} select[name='gpu_model']", "NVIDIA H100 80GB HBM3")
    page.fill(f"{form} input[name='price_per_gpu_hour']", "2.75")
    page.fill(f"{form} input[name='price_per_kwh']", "0.15")
    page.fill(f"{form} input[name='region']", "NO")
    page.fill(f"{form} input[name='grid_intensity_g_per_kwh']", "30")
    page.fill(f"{form} input[name='agent']", stack.keys.agent_address)
    run_action(page, "create-offer")
    offer_id = chain.market.functions.offerCount().call()
    assert offer_id == count_before + 1
    offer = chain.offer(offer_id)
    assert offer["pricePerGpuHour"] == 2_750_000 and offer["pricePerKwh"] == 150_000 and offer["active"]
    page.wait_for_selector(f"[data-testid='withdraw-offer-{offer_id}']", timeout=TIMEOUT_MS)
    run_action(page, f"withdraw-offer-{offer_id}")
    assert not chain.offer(offer_id)["active"]
    # the market no longer lists it
    assert httpx.get(f"{stack.web}/api/v1/offers", params={"limit": 200}).json()["total"] == 3


def test_provider_sees_a_slash_with_its_reason_evidence_and_transaction(stack: Stack, chain: ChainView,
                                                                        open_as: Any, shots: Any) -> None:
    """A second rental, started, then slashed by a fault report two of the three node keys signed,
    while the provider's page is open: the slash shows up there without a reload."""
    from oracle.attestation.eip712 import FaultReport, fault_report_digest
    from oracle.attestation.signing import sign_digest
    from oracle.demo import steps
    from oracle.demo.base import DEPLOYER
    from oracle.keys import load_keystore

    rental_id = steps.open_rental(stack.demo_chain, stack.offers["pricier"], "2").rental_id
    started_at = steps.start_rental(stack.demo_chain, rental_id)
    stack.rpc_call("evm_increaseTime", [60])
    stack.rpc_call("evm_mine")
    page = open_as(stack.provider)
    visit(page, f"{stack.web}/#/provider", "h1")
    connect(page)
    page.wait_for_selector("[data-testid='slashes'] tbody tr", timeout=TIMEOUT_MS)
    assert page.query_selector(f"[data-testid='slashes'] a[href='#/rental/{rental_id}']") is None
    page.fill("[data-testid='stake-form'] input", "12.5")  # half-typed: a refresh must not lose it
    fault = FaultReport(rental_id=rental_id, fault_id=1, kind=2, observed_at=started_at + 30,
                        evidence_hash=bytes.fromhex("ab" * 32), signer_set_version=1)
    digest = fault_report_digest(fault, int(stack.deployment["chain_id"]), stack.deployment["market"])
    password = stack.keys.password_file.read_text().strip()
    signatures = [sign_digest(load_keystore(path, password), digest) for path in stack.keys.node_keystores[:2]]
    slashed = stack.demo_chain.ctx(DEPLOYER).client.slash(fault, signatures)
    (event,) = chain.events("Slashed", rentalId=rental_id)

    page.wait_for_selector(f"[data-testid='slashes'] tbody tr a[href='#/rental/{rental_id}']", timeout=TIMEOUT_MS)
    row = page.eval_on_selector(
        "[data-testid='slashes'] tbody tr",
        "r => [r.cells[1].textContent, r.querySelector('[data-field=amount]').dataset.raw, "
        "r.querySelector('code').title, r.cells[4].textContent, r.querySelector('[data-tx]').dataset.tx]")
    reason, amount, evidence, signed_by, tx = row
    assert reason == "energy counter mismatch"
    assert page.input_value("[data-testid='stake-form'] input") == "12.5"
    assert int(amount) == event["args"]["amount"] > 0
    assert evidence == "0x" + "ab" * 32
    assert signed_by == "2" and tx.lower() == slashed.tx_hash.lower()
    assert one(page, "[data-testid='stake']", "locked")[0] == chain.stake(stack.provider)["locked"]
    assert axe_violations(page, str(VENDOR / "axe.min.js")) == []
    shots(page, "provider-slash")
