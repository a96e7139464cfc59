// The browser wallet (EIP-1193 `window.ethereum`, as MetaMask and other wallets provide).
// The server plans each action as unsigned transactions ({to, data, value, label}); the wallet
// signs and sends them one after the other. No private key ever reaches the page or the server.
import { post, get, meta } from "./api.js";

const listeners = new Set();
let account = null;

export function provider() {
  return window.ethereum || null;
}

export function current() {
  return account;
}

export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function set(next) {
  const normal = next || null;
  if ((normal || "").toLowerCase() === (account || "").toLowerCase()) return;
  account = normal;
  for (const fn of listeners) fn(account);
}

export async function connect() {
  const eth = provider();
  if (!eth) throw new Error("no browser wallet found (install one that supports EIP-1193, e.g. MetaMask)");
  const accounts = await eth.request({ method: "eth_requestAccounts" });
  if (!accounts || !accounts.length) throw new Error("the wallet shared no account");
  const [chainHex, deployment] = await Promise.all([eth.request({ method: "eth_chainId" }), meta()]);
  if (parseInt(chainHex, 16) !== Number(deployment.chain_id)) {
    throw new Error(`the wallet is on chain ${parseInt(chainHex, 16)}; this market is on chain ${deployment.chain_id}`);
  }
  set(accounts[0]);
  return account;
}

/** Picks up an account the wallet already shared, without a prompt. */
export async function restore() {
  const eth = provider();
  if (!eth) return null;
  if (eth.on) eth.on("accountsChanged", (accounts) => set(accounts && accounts[0]));
  try {
    const accounts = await eth.request({ method: "eth_accounts" });
    if (accounts && accounts.length) set(accounts[0]);
  } catch (_) { /* a wallet without eth_accounts: wait for connect */ }
  return account;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function receipt(hash, timeoutMs) {
  const eth = provider();
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = await eth.request({ method: "eth_getTransactionReceipt", params: [hash] });
    if (r) return r;
    await sleep(400);
  }
  throw new Error(`transaction ${hash} was not mined within ${Math.round(timeoutMs / 1000)} s`);
}

async function indexed(hash, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const state = await get(`/tx/${hash}`);
      if (state.indexed) return true;
    } catch (_) { /* the index may not know it yet */ }
    await sleep(400);
  }
  return false;
}

/**
 * Plans `action` on the server and sends its transactions through the wallet, each after the
 * previous one is mined. `progress(text)` hears every step. Resolves to {plan, hashes}.
 */
export async function act(action, body, progress = () => {}) {
  if (!account) await connect();
  progress(`planning ${action.replace(/_/g, " ")}…`);
  const plan = await post(`/tx/${action}`, { from: account, ...body });
  const eth = provider();
  const hashes = [];
  for (const [i, tx] of plan.txs.entries()) {
    const step = plan.txs.length > 1 ? ` (${i + 1} of ${plan.txs.length})` : "";
    progress(`${tx.label}${step}: confirm in your wallet`);
    const hash = await eth.request({
      method: "eth_sendTransaction",
      params: [{ from: account, to: tx.to, data: tx.data, value: tx.value || "0x0" }],
    });
    hashes.push(hash);
    progress(`${tx.label}${step}: sent ${hash}, waiting to be mined`);
    const r = await receipt(hash, 120000);
    if (r.status !== "0x1" && r.status !== 1) throw new Error(`${tx.label} failed on chain (${hash})`);
  }
  if (hashes.length) {
    progress("mined; waiting for the index to include it");
    await indexed(hashes[hashes.length - 1], 30000);
  }
  progress(`done: ${plan.txs.map((t) => t.label).join("; ")}`);
  return { plan, hashes };
}
