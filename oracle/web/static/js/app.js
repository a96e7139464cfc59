// The router: #/market, #/rentals, #/rental/<id>, #/provider[/<address>], #/network.
import { meta } from "./api.js";
import { h, clear, errorBox, short } from "./dom.js";
import * as wallet from "./wallet.js";
import * as market from "./market.js";
import * as rental from "./rental.js";
import * as rentals from "./rentals.js";
import * as providerPage from "./provider.js";
import * as network from "./network.js";

// [pattern, nav entry, page, whether the page shows something else once a wallet connects]
const routes = [
  [/^#\/market$/, "market", () => market.render, false],
  [/^#\/rentals$/, "rentals", () => rentals.render, true],
  [/^#\/rental\/(\d+)$/, "rentals", () => rental.render, true],
  [/^#\/provider(?:\/(0x[0-9a-fA-F]{40}))?$/, "provider", () => providerPage.render, true],
  [/^#\/network$/, "network", () => network.render, false],
];

function currentRoute() {
  const hash = location.hash || "#/market";
  return routes.find(([re]) => re.test(hash));
}

let cleanup = null;
let generation = 0;

async function route() {
  // Each call renders into a detached view; only the newest call's view is shown (a wallet
  // event can re-route while the previous page is still loading).
  const mine = ++generation;
  const hash = location.hash || "#/market";
  const main = document.getElementById("main");
  if (cleanup) { cleanup(); cleanup = null; }
  const match = routes.map(([re, page, fn]) => [hash.match(re), page, fn]).find(([m]) => m);
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (match && link.dataset.page === match[1]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = h("div", { class: "view" });
  let done = null;
  if (!match) {
    view.append(h("h1", {}, "Not found"), errorBox(`no page at ${hash}`));
  } else {
    const [m, , fn] = match;
    try {
      done = (await fn()(view, m.slice(1))) || null;
    } catch (e) {
      view.append(errorBox(e.message));
    }
  }
  if (mine !== generation) {
    if (done) done();
    return;
  }
  cleanup = done;
  clear(main).append(view);
}

function showAccount(account) {
  document.getElementById("account").textContent = account ? `account ${short(account)}` : "not connected";
  document.getElementById("account").title = account || "";
  document.getElementById("connect").textContent = account ? "Wallet connected" : "Connect wallet";
}

async function start() {
  // the skip link moves the focus without touching the hash (the hash is the page's route)
  document.querySelector(".skip").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  document.getElementById("connect").addEventListener("click", async () => {
    try {
      await wallet.connect();
    } catch (e) {
      document.getElementById("chain").textContent = e.message;
    }
  });
  await wallet.restore();
  showAccount(wallet.current());
  wallet.onChange((account) => {
    showAccount(account);
    const r = currentRoute();
    if (r && r[3]) route();
  });
  try {
    const m = await meta();
    document.getElementById("chain").textContent =
      `chain ${m.chain_id} (${m.network}) · market ${m.market} · indexed to block ${m.index.last_block}`;
  } catch (e) {
    document.getElementById("chain").textContent = `server not reachable: ${e.message}`;
  }
  // after a navigation, focus moves to the new page (screen readers announce it)
  window.addEventListener("hashchange", () => route().then(() => document.getElementById("main").focus({ preventScroll: true })));
  await route();
}

start();
