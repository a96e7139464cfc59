// Operators and governance: each node's health as it reports it, the signer set, the market's
// parameters and the timelock's pending changes.
import { get, meta } from "./api.js";
import { h, num, facts, section, table, txLink, addr } from "./dom.js";
import { liveBoxes } from "./live.js";

/** A bytes32 argument that holds text (a GPU model, a region) shown as the text. */
function arg(value) {
  const m = typeof value === "string" && value.match(/^0x((?:[0-9a-f]{2})+?)(?:00)*$/i);
  if (!m || value.length !== 66) return String(value);
  const bytes = m[1].match(/../g).map((b) => parseInt(b, 16));
  return bytes.every((b) => b >= 32 && b < 127) ? `"${String.fromCharCode(...bytes)}"` : String(value);
}

/** "settlement_grace_s" -> "Settlement grace" (the unit shows in the value). */
function paramLabel(key) {
  const words = key.replace(/_(s|bps)$/, "").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// Node health is read live on every refill, so this page refills less often than the others.
const REFRESH_MS = 10_000;

export async function render(main) {
  const m = await meta();
  const n = await get("/network");
  const live = liveBoxes(["nodes", "signers", "params", "governance"], "/network", (data) => sections(data, m), REFRESH_MS);
  main.append(h("h1", {}, "Operators and governance"), live.problems,
    section("Oracle nodes", "nodes", live.boxes.nodes),
    section("Signer set", "signers", live.boxes.signers),
    section("Parameters", "params", live.boxes.params),
    section("Pending governance changes", "governance", live.boxes.governance));
  live.start(n);
  return () => live.stop();
}

function sections(n, m) {
  return {
    nodes: table({
      caption: "Health as each node reports it (/healthz)", testid: "nodes", empty: "no node configured (gpurent web --node URL)",
      columns: [
        { label: "Node", cell: (x) => h("code", {}, x.url) },
        { label: "Health", cell: (x) => h("span", { class: x.ok ? "ok" : "bad" }, x.ok ? "ok" : `down: ${x.error || x.http_status}`) },
        { label: "Chain", cell: (x) => (x.health && x.health.chain ? String(x.health.chain.state || "–") : "–") },
        { label: "Latency", cell: (x) => (x.latency_ms === null || x.latency_ms === undefined ? "–" : `${x.latency_ms} ms`) },
        { label: "Signer", cell: (x) => addr(x.signer) },
        { label: "In signer set", cell: (x) => (x.in_signer_set ? "yes" : "no") },
      ],
      rows: n.nodes,
    }),
    signers: h("div", {}, facts([
      ["Version", num(n.signer_set, "version")],
      ["Threshold", h("span", {}, num(n.signer_set, "threshold"), ` of ${n.signer_set.signers.length}`)],
      ["Rotation overlap", num(n.signer_set, "overlap_s")],
    ]), table({
      caption: "Signers", testid: "signers",
      columns: [
        { label: "Address", cell: (s) => h("code", {}, s.address) },
        { label: "Node", cell: (s) => s.node_url || "–" },
        { label: "Bonded", cell: (s) => (s.bonded === null || s.bonded === undefined ? "–" : s.bonded ? "yes" : "no") },
      ],
      rows: n.signer_set.signers,
    })),
    params: facts(Object.keys(n.params).filter((k) => !k.endsWith("_display"))
      .map((k) => [paramLabel(k), k === "treasury" ? addr(n.params[k]) : num(n.params, k)]), { "data-testid": "params" }),
    governance: n.timelock ? h("div", {},
      h("p", {}, "Timelock ", addr(n.timelock.address), " · minimum delay ", num(n.timelock, "min_delay_s")),
      table({
        caption: "Scheduled, not yet executed", testid: "pending", empty: "no pending change",
        columns: [
          { label: "Call", cell: (c) => `${c.function}(${Object.entries(c.args || {}).map(([k, v]) => `${k}=${arg(v)}`).join(", ")})` },
          { label: "Ready", cell: (c) => num(c, "ready_at") },
          { label: "State", cell: (c) => c.state },
          { label: "Scheduled in", cell: (c) => txLink(c.scheduled_tx, m.explorer) },
        ],
        rows: n.timelock.pending,
      })) : h("p", {}, "No timelock governs this market."),
  };
}
