// Provider dashboard: stake (active, locked by rentals, unbonding), offers, rentals waiting for
// start with their deadline, earnings, slashes with reason and evidence; the wallet actions.
import { get, meta } from "./api.js";
import { h, num, facts, section, table, field, errorBox, addr } from "./dom.js";
import { actionForm, actionButton } from "./actions.js";
import { liveBoxes } from "./live.js";
import { rentalRows, withdrawables } from "./rentals.js";
import { slashTable } from "./rental.js";
import * as wallet from "./wallet.js";

// Data sections are refilled in place as the chain moves (a settlement, a slash, a rental to
// start; live.js); the forms are built once, outside them.
export async function render(main, [address]) {
  const m = await meta();
  const who = address || wallet.current();
  main.append(h("h1", {}, "Provider"));
  if (!who) {
    main.append(h("p", {}, "Connect your wallet, or open a provider's page from the market."));
    return null;
  }
  const mine = wallet.current() && wallet.current().toLowerCase() === who.toLowerCase();
  let p;
  try {
    p = await get(`/providers/${who}`);
  } catch (e) {
    main.append(errorBox(e.message));
    return null;
  }
  const live = liveBoxes(["stake", "unbonding", "reputation", "offers", "rentals", "earnings", "withdraw", "slashes"],
    `/providers/${who}`, (data, again) => sections(data, mine, m, again));
  const { boxes, refresh } = live;
  const sym = p.stake.token ? p.stake.token.symbol : "";
  main.append(h("p", {}, "Account ", addr(p.address), mine ? " (your wallet)" : ""), live.problems,
    section("Stake", "stake", boxes.stake, mine ? stakeForms(p.stake, sym, refresh) : null, boxes.unbonding),
    section("Reputation", "reputation", boxes.reputation),
    section("Offers", "offers", boxes.offers, mine ? await offerForm(m, refresh) : null),
    section("Rentals", "provider-rentals", boxes.rentals),
    section("Earnings", "earnings", boxes.earnings, boxes.withdraw),
    section("Slashes", "provider-slashes", boxes.slashes));
  live.start(p);
  return () => live.stop();
}

function sections(p, mine, m, again) {
  const stake = p.stake;
  return {
    stake: facts([
      ["Active", num(stake, "active")],
      ["Locked by rentals", num(stake, "locked")],
      ["Unbonding", h("span", {}, num(stake, "unbonding"),
        stake.unbonding_release_at ? h("span", {}, ", released ", num(stake, "unbonding_release_at")) : "")],
      ["Free", num(stake, "free")],
      ["Listed GPUs", num(stake, "listed_gpus")],
      ["Required for them", num(stake, "required")],
    ], { "data-testid": "stake" }),
    unbonding: mine && BigInt(stake.unbonding || 0) > 0n ? actionButton({ label: "Complete unstake",
      action: "complete_unstake", body: {}, done: again, testid: "complete-unstake" }) : "",
    reputation: facts([
      ["Score", num(p.reputation, "score_bps")],
      ["Completed rentals", num(p.reputation, "completed_rentals")],
      ["Abandoned rentals", num(p.reputation, "abandoned_rentals")],
      ["Uptime", num(p, "uptime_bps")],
      ["Challenges", `${p.verification.challenges_passed} passed, ${p.verification.challenges_failed} failed`],
    ]),
    offers: table({
      caption: "Offers", testid: "provider-offers", empty: "no offer",
      columns: [
        { label: "Offer", cell: (o) => String(o.offer_id) },
        { label: "GPUs", cell: (o) => `${o.gpu_count} × ${o.gpu_model}` },
        { label: "Price per GPU-hour", cell: (o) => num(o, "price_per_gpu_hour") },
        { label: "Price per kWh", cell: (o) => num(o, "price_per_kwh") },
        { label: "Region", cell: (o) => o.region },
        { label: "Listed", cell: (o) => (o.active ? "yes" : "withdrawn") },
        { label: "Action", cell: (o) => (mine && o.active ? actionButton({ label: `Withdraw offer ${o.offer_id}`,
          action: "withdraw_offer", body: { offer_id: o.offer_id }, done: again, testid: `withdraw-offer-${o.offer_id}` }) : "–") },
      ],
      rows: p.offers,
    }),
    rentals: h("div", {},
      rentalRows("Waiting for the provider to start", p.rentals.waiting_for_start, "waiting", [
        { label: "Start deadline", cell: (r) => h("span", {}, num(r, "start_deadline"), " (", num(r, "start_deadline_in_s"), ")") },
        { label: "Action", cell: (r) => (mine ? actionButton({ label: `Start rental ${r.rental_id}`, action: "start_rental",
          body: { rental_id: r.rental_id }, done: again, testid: `start-${r.rental_id}` }) : "–") },
      ]),
      rentalRows("Active", p.rentals.active, "active-rentals"),
      rentalRows("Ended, to finalize", p.rentals.ended, "ended-rentals", [
        { label: "Action", cell: (r) => actionButton({ label: `Finalize rental ${r.rental_id}`, action: "finalize_rental",
          body: { rental_id: r.rental_id }, done: again, testid: `finalize-${r.rental_id}` }) },
      ]),
      rentalRows("Finalized or cancelled", p.rentals.done, "done-rentals")),
    earnings: table({
      caption: "Earnings per payment token", testid: "earnings", empty: "no earnings yet",
      columns: [
        { label: "Token", cell: (e) => e.token.symbol },
        { label: "Paid by renters", cell: (e) => num(e, "paid_gross") },
        { label: "Protocol fees", cell: (e) => num(e, "fees") },
        { label: "Earned", cell: (e) => num(e, "earned") },
        { label: "Claimed", cell: (e) => num(e, "claimed") },
        { label: "Claimable", cell: (e) => num(e, "claimable") },
        { label: "Withdrawn", cell: (e) => num(e, "withdrawn") },
      ],
      rows: p.earnings,
    }),
    withdraw: mine ? withdrawables(p.withdrawable || [], again) : "",
    slashes: slashTable(p.slashes, m.explorer),
  };
}

function stakeForms(stake, sym, again) {
  const amount = h("input", { type: "text", inputmode: "decimal", required: true, name: "stake" });
  const unstake = h("input", { type: "text", inputmode: "decimal", required: true, name: "unstake" });
  return h("div", { class: "actions" },
    actionForm({ title: "Stake", action: "stake", submit: "Stake", testid: "stake-form",
      fields: [field(`Add stake (${sym})`, amount)],
      body: () => ({ token: stake.token.address, amount: amount.value.trim() }), done: again }),
    actionForm({ title: "Request unstake", action: "request_unstake", submit: "Request unstake", testid: "unstake-form",
      fields: [field(`Unstake (${sym}, released after the unbonding delay)`, unstake)],
      body: () => ({ amount: unstake.value.trim() }), done: again }),
  );
}

async function offerForm(m, again) {
  const answer = await get("/gpu-models").catch(() => ({ items: [] }));
  const models = Array.isArray(answer) ? answer : answer.items || [];
  const input = (name, attrs = {}) => h("input", { name, required: true, autocomplete: "off", ...attrs });
  const model = h("select", { name: "gpu_model", required: true },
    models.map((g) => h("option", { value: g.name }, `${g.name}${g.registered ? "" : " (not registered)"}`)));
  const token = h("select", { name: "payment_token" }, (m.payment_tokens || []).map((t) => h("option", { value: t.address }, t.symbol)));
  const sym = (m.payment_tokens && m.payment_tokens[0] && m.payment_tokens[0].symbol) || "";
  const f = {
    gpu_count: input("gpu_count", { type: "number", min: 1, value: 1 }),
    price_per_gpu_hour: input("price_per_gpu_hour", { inputmode: "decimal" }),
    price_per_kwh: input("price_per_kwh", { inputmode: "decimal", value: "0" }),
    region: input("region"),
    grid_intensity_g_per_kwh: input("grid_intensity_g_per_kwh", { type: "number", min: 0, value: 0 }),
    max_duration_s: input("max_duration_s", { type: "number", min: 1, value: 604800 }),
    min_uptime_bps: input("min_uptime_bps", { type: "number", min: 0, max: 10000, value: 9500 }),
    max_gap_s: input("max_gap_s", { type: "number", min: 0, value: 0 }),
    agent: input("agent", { pattern: "0x[0-9a-fA-F]{40}", placeholder: "0x…" }),
  };
  return h("details", {}, h("summary", {}, "List a new offer"),
    actionForm({ title: "List an offer", action: "create_offer", submit: "List offer", testid: "create-offer",
      fields: [field("GPU model", model), field("GPUs", f.gpu_count), field("Payment token", token),
        field(`Price per GPU-hour (${sym})`, f.price_per_gpu_hour), field(`Price per kWh (${sym})`, f.price_per_kwh),
        field("Region", f.region), field("Grid carbon intensity (gCO2e/kWh)", f.grid_intensity_g_per_kwh),
        field("Longest rental (seconds)", f.max_duration_s), field("Minimum uptime (basis points)", f.min_uptime_bps),
        field("Longest telemetry gap (seconds, 0 = protocol default)", f.max_gap_s),
        field("Telemetry agent address", f.agent, "the key the agent beside the GPUs signs telemetry with")],
      body: () => ({ gpu_model: model.value, payment_token: token.value,
        ...Object.fromEntries(Object.entries(f).map(([k, el]) => [k, ["gpu_count", "grid_intensity_g_per_kwh", "max_duration_s", "min_uptime_bps", "max_gap_s"].includes(k) ? Number(el.value) : el.value.trim()])) }),
      done: again }));
}
