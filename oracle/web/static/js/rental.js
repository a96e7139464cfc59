// One rental: status, budget left and when it runs out, live charts of power, utilization,
// energy and cost, each settlement with its transaction, the energy & carbon receipt, and the
// renter's and provider's actions.
import { get, meta } from "./api.js";
import { h, num, facts, section, table, txLink, addr, field, clear, errorBox } from "./dom.js";
import { actionForm, actionButton } from "./actions.js";
import { rentalCharts } from "./charts.js";
import * as wallet from "./wallet.js";

// RentalStatus (oracle/protocol.py): NONE, OPEN, ACTIVE, ENDED, CANCELLED, FINALIZED
const OPEN = 1, ACTIVE = 2, ENDED = 3;
const LIVE = new Set([OPEN, ACTIVE, ENDED]);
const same = (a, b) => (a || "").toLowerCase() === (b || "").toLowerCase();

export async function render(main, [idText]) {
  const id = Number(idText);
  const m = await meta();
  const summary = h("div", { "data-testid": "rental-summary" });
  const actions = h("div", { class: "actions" });
  const chartBox = h("div", { class: "charts" });
  const settlementsBox = h("div", {});
  const slashesBox = h("div", {});
  const problems = h("div", {});
  const heading = h("h1", {}, `Rental ${id}`);
  main.append(heading, problems, summary, actions,
    section("Usage over time", "usage", h("p", {}, "From the nodes' quorum-signed cumulative reports as settled on chain; "
      + "updates while the rental runs."), chartBox),
    section("Settlements", "settlements", settlementsBox),
    section("Energy and carbon receipt", "receipt",
      h("p", {}, "Energy, carbon, grid intensity, the committed telemetry hash and the signers of the last settled report."),
      h("a", { href: `/api/v1/rentals/${id}/receipt?download=1`, download: `gpurent-receipt-${m.chain_id}-${id}.json`,
        "data-testid": "receipt" }, "Download the receipt (JSON)")),
    section("Slashes", "slashes", slashesBox));

  const update = rentalCharts(chartBox);
  let points = [];
  let timer = null;
  let alive = true;
  let lastActionsKey = "";

  async function refresh() {
    let rental, series, settlements, slashes;
    try {
      [rental, series, settlements, slashes] = await Promise.all([
        get(`/rentals/${id}`),
        get(`/rentals/${id}/series`, { since_sequence: points.length ? points[points.length - 1].sequence : 0 }),
        get(`/rentals/${id}/settlements`),
        get(`/rentals/${id}/slashes`).catch(() => ({ items: [] })),
      ]);
      clear(problems);
    } catch (e) {
      clear(problems).append(errorBox(e.message));
      return;
    }
    if (!alive) return;
    const token = rental.payment_token;
    heading.textContent = `Rental ${id}: ${rental.status_label}`;
    const known = new Set(points.map((p) => p.sequence));
    points = points.concat(series.points.filter((p) => !known.has(p.sequence)));
    update(points, token);
    const remainingFraction = Number(rental.budget) ? Number(rental.remaining) / Number(rental.budget) : 0;
    clear(summary).append(
      facts([
        ["Status", h("span", { "data-field": "status", "data-raw": rental.status }, rental.status_label)],
        ["Offer", h("span", {}, `${rental.offer_id}: ${rental.gpu_count} × ${rental.gpu_model}, ${rental.region}`)],
        ["Renter", addr(rental.renter)],
        ["Provider", addr(rental.provider, { link: true })],
        ["Budget", num(rental, "budget")],
        ["Paid so far", num(rental, "paid")],
        [LIVE.has(rental.status) ? "Budget left" : "Not spent", h("span", {}, num(rental, "remaining"), " ",
          h("meter", { min: 0, max: 1, value: remainingFraction.toFixed(4), "aria-label": "budget left" }))],
        LIVE.has(rental.status) ? ["Spending", rental.burn ? h("span", {}, num(rental.burn, "per_hour"), ` (${rental.burn.basis})`) : "–"] : null,
        ["Runs out", rental.runs_out_at ? h("span", { "data-testid": "runs-out" }, num(rental, "runs_out_in_s"), " · ",
          num(rental, "runs_out_at"), rental.ends_by === "max_duration" ? " (the maximum duration ends it first)" : "") : "–"],
        ["Started", rental.started_at ? num(rental, "started_at") : h("span", {}, "waiting for the provider; deadline ", num(rental, "start_deadline"))],
        rental.ended_at ? ["Ended", h("span", {}, num(rental, "ended_at"), ` (${rental.end_reason_label})`)] : null,
        ["GPU time attested", num(rental, "available_gpu_seconds")],
        ["Busy GPU time", num(rental, "busy_gpu_seconds")],
        ["Energy", num(rental, "energy_mj")],
        ["Carbon", num(rental, "carbon_mg")],
        ["Uptime", num(rental, "uptime_bps")],
        ["Proof-of-GPU challenges", h("span", {}, num(rental, "challenges_passed"), " passed, ", num(rental, "challenges_failed"), " failed")],
        rental.refund !== null && rental.refund !== undefined ? ["Refunded", num(rental, "refund")] : null,
      ], { "data-testid": "rental-facts" }));
    clear(settlementsBox).append(table({
      caption: `${settlements.items.length} settled report${settlements.items.length === 1 ? "" : "s"}`,
      testid: "settlements", empty: "no settlement yet",
      columns: [
        { label: "Report", cell: (s) => String(s.sequence) },
        { label: "Paid", cell: (s) => num(s, "payment") },
        { label: "Paid in total", cell: (s) => num(s, "paid_after") },
        { label: "Sent by", cell: (s) => addr(s.submitter) },
        { label: "Signers", cell: (s) => h("span", {}, (s.signers || []).map((a) => addr(a)).flatMap((n, i) => (i ? [", ", n] : [n]))) },
        { label: "Transaction", cell: (s) => txLink(s.tx_hash, m.explorer) },
      ],
      rows: settlements.items,
    }));
    clear(slashesBox).append(slashTable(slashes.items, m.explorer));
    const account = wallet.current();
    const party = same(account, rental.renter) || same(account, rental.provider);
    const owed = party ? await withdrawable(account, rental.payment_token) : null;
    const key = `${rental.status}|${account}|${owed && owed.amount}`;
    if (key !== lastActionsKey) {
      lastActionsKey = key;
      clear(actions).append(...renderActions(rental, account, owed, refresh));
    }
    clearTimeout(timer);
    if (alive && LIVE.has(rental.status)) timer = setTimeout(refresh, 2000);
  }

  await refresh();
  return () => { alive = false; clearTimeout(timer); update.stop(); };
}

export function slashTable(items, explorer) {
  return table({
    caption: "Slashes", testid: "slashes", empty: "no slash",
    columns: [
      { label: "Rental", cell: (s) => h("a", { href: `#/rental/${s.rental_id}` }, String(s.rental_id)) },
      { label: "Reason", cell: (s) => s.kind_label },
      { label: "Amount", cell: (s) => num(s, "amount") },
      { label: "Evidence", cell: (s) => h("code", { title: s.evidence_hash }, `${(s.evidence_hash || "").slice(0, 12)}…`) },
      { label: "Signed by", cell: (s) => String((s.signers || []).length) },
      { label: "Transaction", cell: (s) => txLink(s.tx_hash, explorer) },
    ],
    rows: items,
  });
}

/** What the market holds for ``account`` in ``token`` (live read), or null. */
async function withdrawable(account, token) {
  try {
    const info = await get(`/accounts/${account}`);
    return (info.withdrawable || []).find((w) => same(w.token.address, token.address)) || null;
  } catch (_) {
    return null;
  }
}

function renderActions(rental, account, owed, refresh) {
  const out = [];
  const status = rental.status;
  const token = rental.payment_token;
  if (!account) return [h("p", {}, "Connect your wallet to act on this rental.")];
  if (same(account, rental.renter)) {
    if (status === OPEN || status === ACTIVE) {
      const amount = h("input", { type: "text", inputmode: "decimal", required: true, name: "amount" });
      out.push(actionForm({ title: "Top up", action: "top_up", submit: "Top up", testid: "top-up",
        fields: [field(`Add to the budget (${token.symbol})`, amount)],
        body: () => ({ rental_id: rental.rental_id, amount: amount.value.trim() }), done: refresh }));
    }
    if (status === ACTIVE) {
      out.push(actionButton({ label: "End rental", action: "end_rental", body: { rental_id: rental.rental_id },
        done: refresh, testid: "end-rental" }));
    }
    if (status === OPEN) {
      out.push(actionButton({ label: "Cancel rental", action: "cancel_rental", body: { rental_id: rental.rental_id },
        done: refresh, testid: "cancel-rental" }));
    }
  }
  if (same(account, rental.provider)) {
    if (status === OPEN) {
      out.push(actionButton({ label: "Start rental", action: "start_rental", body: { rental_id: rental.rental_id },
        done: refresh, testid: "start-rental" }));
    }
  }
  if (status === ENDED) {
    out.push(actionButton({ label: "Finalize (refund and reputation)", action: "finalize_rental",
      body: { rental_id: rental.rental_id }, done: refresh, testid: "finalize-rental" }));
  }
  if (owed && BigInt(owed.amount) > 0n) {
    out.push(actionButton({ label: `Withdraw ${owed.amount_display}`, action: "withdraw", body: { token: token.address },
      done: refresh, testid: "withdraw" }));
  }
  return out.length ? [h("h2", {}, "Actions"), ...out] : [];
}
