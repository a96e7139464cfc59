// Market: every listed offer, sortable and filterable on each column (server-side, from the
// index), "this budget buys about N hours", and opening a rental through the wallet.
import { get, meta, parseUnits } from "./api.js";
import { h, num, clear, section, field, errorBox, addr } from "./dom.js";
import { actionForm } from "./actions.js";
import * as wallet from "./wallet.js";

// filter kinds: select (facet values), min/max (a number in the unit shown, converted to the API's)
const bps = (t) => parseUnits(t, 2, "percent");
const COLUMNS = [
  { key: "offer_id", label: "Offer", cell: (o) => o.offer_id },
  { key: "gpu_model", label: "GPU model", cell: (o) => o.gpu_model,
    filter: { kind: "select", param: "gpu_model", facet: "gpu_models" } },
  { key: "gpu_count", label: "GPUs", cell: (o) => num(o, "gpu_count"),
    filter: { kind: "min", param: "min_gpu_count", unit: "GPUs", convert: (t) => String(parseInt(t, 10)) } },
  { key: "memory_mib", label: "Memory per GPU", cell: (o) => num(o, "memory_mib"),
    filter: { kind: "min", param: "min_memory_mib", unit: "GiB", convert: (t) => String(Math.floor(parseFloat(t) * 1024)) } },
  { key: "price_per_gpu_hour", label: "Price per GPU-hour", cell: (o) => num(o, "price_per_gpu_hour"),
    filter: { kind: "max", param: "max_price_per_gpu_hour", token: true } },
  { key: "price_per_kwh", label: "Price per kWh", cell: (o) => num(o, "price_per_kwh"),
    filter: { kind: "max", param: "max_price_per_kwh", token: true } },
  { key: "effective_price_per_gpu_hour", label: "Per GPU-hour at typical power",
    cell: (o) => h("span", {}, num(o, "effective_price_per_gpu_hour"), h("small", {}, " at ", num(o, "typical_power_w"))),
    filter: { kind: "max", param: "max_effective_price_per_gpu_hour", token: true } },
  { key: "budget_hours", label: "Budget buys", cell: (o) => h("span", { "data-field": "budget_hours",
    "data-raw": o.budget_hours ? o.budget_hours.hours_x100 : "" }, o.budget_hours ? o.budget_hours.display : "–") },
  { key: "region", label: "Region", cell: (o) => o.region, filter: { kind: "select", param: "region", facet: "regions" } },
  { key: "grid_intensity_g_per_kwh", label: "Grid carbon", cell: (o) => num(o, "grid_intensity_g_per_kwh"),
    filter: { kind: "max", param: "max_grid_intensity_g_per_kwh", unit: "gCO2e/kWh", convert: (t) => String(parseInt(t, 10)) } },
  { key: "reputation_bps", label: "Reputation", cell: (o) => num(o.reputation, "score_bps", { testid: "reputation" }),
    filter: { kind: "min", param: "min_reputation_bps", unit: "of 100", convert: bps } },
  { key: "uptime_bps", label: "Uptime", cell: (o) => num(o, "uptime_bps"),
    filter: { kind: "min", param: "min_uptime_bps", unit: "%", convert: bps } },
  { key: "challenges_failed", label: "Verification",
    cell: (o) => h("span", { class: "verification" },
      `${o.verification.challenges_passed} passed, ${o.verification.challenges_failed} failed`
      + (o.verification.slash_count ? `, ${o.verification.slash_count} slashed` : "")),
    filter: { kind: "max", param: "max_challenges_failed", unit: "failed challenges", convert: (t) => String(parseInt(t, 10)) } },
  { key: "max_duration_s", label: "Max duration", cell: (o) => num(o, "max_duration_s"),
    filter: { kind: "min", param: "min_max_duration_s", unit: "hours", convert: (t) => String(Math.floor(parseFloat(t) * 3600)) } },
];
const DESC_FIRST = new Set(["reputation_bps", "uptime_bps", "budget_hours"]);

export async function render(main) {
  const m = await meta();
  const tokens = m.payment_tokens || [];
  const state = { sort: "effective_price_per_gpu_hour", order: "asc", filters: {}, budget: "", gpus: "", q: "",
    token: tokens.length ? tokens[0].address : "" };
  const token = () => tokens.find((t) => t.address === state.token) || tokens[0] || { decimals: 18, symbol: "" };
  let timer = null;
  let alive = true;

  const tbody = h("tbody", { "aria-live": "polite" });
  const totalOut = h("p", { class: "total", role: "status", "data-testid": "offer-count" });
  const problems = h("p", { class: "error", role: "alert", hidden: true });
  const rentPanel = h("div", { id: "rent-panel" });

  const headRow = h("tr", {});
  const filterRow = h("tr", { class: "filters" });
  const sortButtons = new Map();
  for (const col of COLUMNS) {
    const button = h("button", { type: "button", class: "sort", "data-sort": col.key,
      onclick: () => {
        if (state.sort === col.key) state.order = state.order === "asc" ? "desc" : "asc";
        else { state.sort = col.key; state.order = DESC_FIRST.has(col.key) ? "desc" : "asc"; }
        load();
      } }, col.label);
    sortButtons.set(col.key, button);
    headRow.append(h("th", { scope: "col", "data-col": col.key }, button));
    filterRow.append(h("td", {}, col.filter ? filterInput(col) : null));
  }
  headRow.append(h("th", { scope: "col" }, "Rent"));
  filterRow.append(h("td", {}));

  function filterInput(col) {
    const f = col.filter;
    const id = `filter-${col.key}`;
    const what = f.kind === "select" ? `Filter ${col.label}` :
      `${f.kind === "min" ? "Minimum" : "Maximum"} ${col.label.toLowerCase()} (${f.token ? token().symbol : f.unit})`;
    let input;
    if (f.kind === "select") {
      input = h("select", { id, "data-filter": f.param }, h("option", { value: "" }, "any"));
    } else {
      input = h("input", { id, type: "text", inputmode: "decimal", size: 6, "data-filter": f.param, autocomplete: "off" });
    }
    input.addEventListener(f.kind === "select" ? "change" : "input", () => {
      state.filters[f.param] = input.value.trim();
      schedule();
    });
    return [h("label", { for: id, class: "visually-hidden" }, what), input];
  }

  function params() {
    const p = { sort: state.sort, order: state.order, limit: 200, q: state.q };
    if (state.token && tokens.length > 1) p.payment_token = state.token;
    for (const col of COLUMNS) {
      const f = col.filter;
      const text = f && state.filters[f.param];
      if (!text) continue;
      if (f.kind === "select") p[f.param] = text;
      else p[f.param] = f.token ? parseUnits(text, token().decimals, col.label) : f.convert(text);
    }
    if (state.budget) p.budget = state.budget;
    if (state.gpus) p.gpus = state.gpus;
    return p;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  }

  async function load() {
    let answer;
    try {
      answer = await get("/offers", params());
      problems.hidden = true;
    } catch (e) {
      problems.hidden = false;
      problems.textContent = e.message;
      return;
    }
    if (!alive) return;
    for (const [key, button] of sortButtons) {
      const th = button.parentElement;
      if (key === answer.sort) th.setAttribute("aria-sort", answer.order === "asc" ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
    for (const select of filterRow.querySelectorAll("select")) {
      const col = COLUMNS.find((c) => c.filter && c.filter.param === select.dataset.filter);
      const chosen = select.value;
      const names = (answer.facets[col.filter.facet] || []).map((f) => f.name);
      if (chosen && !names.includes(chosen)) names.push(chosen);
      const have = [...select.options].slice(1).map((o) => o.value);
      if (have.join("\n") !== names.join("\n")) {
        clear(select).append(h("option", { value: "" }, "any"), ...names.map((n) => h("option", { value: n }, n)));
        select.value = chosen;
      }
    }
    const shownNote = answer.total > answer.items.length ? ` (the first ${answer.items.length} shown: filter to narrow)` : "";
    totalOut.textContent = `${answer.total} offer${answer.total === 1 ? "" : "s"} match${shownNote}` +
      (state.budget ? ` · a budget of ${state.budget} ${token().symbol} buys the hours shown` : "");
    clear(tbody);
    if (!answer.items.length) tbody.append(h("tr", {}, h("td", { colspan: COLUMNS.length + 1, class: "empty" }, "no offer matches")));
    for (const offer of answer.items) {
      tbody.append(h("tr", { "data-offer": offer.offer_id },
        COLUMNS.map((c) => h(c.key === "offer_id" ? "th" : "td", c.key === "offer_id" ? { scope: "row" } : {}, c.cell(offer))),
        h("td", {}, h("button", { type: "button", "data-testid": `rent-${offer.offer_id}`,
          onclick: () => showRent(offer) }, "Rent", h("span", { class: "visually-hidden" }, ` offer ${offer.offer_id}`)))));
    }
  }

  function showRent(offer) {
    const count = h("input", { type: "number", min: 1, max: offer.gpu_count, value: Math.min(offer.gpu_count, Number(state.gpus) || offer.gpu_count), name: "gpu_count" });
    const budget = h("input", { type: "text", inputmode: "decimal", value: state.budget, name: "budget", required: true });
    const form = actionForm({
      title: `Open a rental of offer ${offer.offer_id}`, action: "open_rental", submit: "Open rental", testid: "open-rental",
      fields: [
        field("GPUs", count),
        field(`Budget (${offer.payment_token.symbol})`, budget, "escrowed now; whatever is not used comes back when the rental is finalized"),
      ],
      body: () => ({ offer_id: offer.offer_id, gpu_count: Number(count.value), budget: budget.value.trim() }),
      done: async ({ plan }) => {
        let id = plan.summary && plan.summary.rental_id;
        if (!id) {
          const mine = await get("/rentals", { renter: wallet.current(), offer_id: offer.offer_id, limit: 1 });
          id = mine.items.length ? mine.items[0].rental_id : null;
        }
        if (id) location.hash = `#/rental/${id}`;
      },
    });
    clear(rentPanel).append(section(`Rent offer ${offer.offer_id}: ${offer.gpu_count} × ${offer.gpu_model}`, "rent",
      h("p", {}, "Provider ", addr(offer.provider, { link: true }), ` · ${offer.region} · `,
        num(offer, "effective_price_per_hour"), " per hour at typical power"),
      wallet.current() ? null : h("p", {}, "Opening a rental asks your wallet to connect first."),
      form));
    budget.focus();
  }

  const budgetInput = h("input", { id: "budget", type: "text", inputmode: "decimal", autocomplete: "off", "data-testid": "budget" });
  budgetInput.addEventListener("input", () => { state.budget = budgetInput.value.trim(); schedule(); });
  const gpusInput = h("input", { id: "gpus", type: "number", min: 1, "data-testid": "gpus" });
  gpusInput.addEventListener("input", () => { state.gpus = gpusInput.value.trim(); schedule(); });
  const search = h("input", { id: "q", type: "search", autocomplete: "off" });
  search.addEventListener("input", () => { state.q = search.value.trim(); schedule(); });
  const tokenSelect = tokens.length > 1
    ? field("Payment token", h("select", { id: "token", onchange: (e) => { state.token = e.target.value; load(); } },
      tokens.map((t) => h("option", { value: t.address }, t.symbol))))
    : null;

  main.append(
    h("h1", {}, "Market"),
    h("form", { class: "budget", role: "search", "aria-label": "Budget and search", onsubmit: (e) => { e.preventDefault(); load(); } },
      field(`Your budget (${token().symbol})`, budgetInput, "shows about how many hours each offer runs on it"),
      field("GPUs you need", gpusInput, "default: all of an offer's GPUs"),
      field("Search model or region", search),
      tokenSelect),
    totalOut, problems,
    h("div", { class: "scroll" }, h("table", { "data-testid": "offers" },
      h("caption", {}, "Offers (click a column to sort; filters under each heading)"),
      h("thead", {}, headRow, filterRow), tbody)),
    rentPanel);
  await load();
  return () => { alive = false; clearTimeout(timer); };
}
