// An EIP-1193 test wallet injected into every page (Playwright add_init_script). It forwards each
// request to anvil's JSON-RPC, where anvil's unlocked dev accounts sign eth_sendTransaction: the
// page and the server never see a private key. Like a real wallet it shares no account before
// eth_requestAccounts (and, like one, remembers per site that it was allowed), and refuses to
// send from any account but its own.
(() => {
  const RPC = "__RPC_URL__";
  const ACCOUNT = "__ACCOUNT__";
  const KEY = "gpurent-test-wallet-connected";
  let connected = false;
  try { connected = window.localStorage.getItem(KEY) === ACCOUNT; } catch (_) { /* opaque origin */ }
  let nextId = 1;
  const listeners = {};
  const log = [];
  async function rpc(method, params) {
    const response = await fetch(RPC, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params: params || [] }),
    });
    const body = await response.json();
    if (body.error) {
      const err = new Error(body.error.message);
      err.code = body.error.code;
      err.data = body.error.data;
      throw err;
    }
    return body.result;
  }
  window.__walletLog = log;
  window.ethereum = {
    isGpurentTestWallet: true,
    async request({ method, params }) {
      log.push({ method, params: params || [] });
      if (method === "eth_requestAccounts") {
        connected = true;
        try { window.localStorage.setItem(KEY, ACCOUNT); } catch (_) { /* opaque origin */ }
        (listeners.accountsChanged || []).forEach((fn) => fn([ACCOUNT]));
        return [ACCOUNT];
      }
      if (method === "eth_accounts") return connected ? [ACCOUNT] : [];
      if (method === "eth_sendTransaction") {
        if (!connected) throw Object.assign(new Error("not connected"), { code: 4100 });
        const tx = params[0];
        if ((tx.from || "").toLowerCase() !== ACCOUNT.toLowerCase()) {
          throw Object.assign(new Error(`this wallet holds ${ACCOUNT}, not ${tx.from}`), { code: 4100 });
        }
      }
      if (method === "eth_sign" || method === "personal_sign" || method.startsWith("eth_signTypedData")) {
        throw Object.assign(new Error(`${method} is not used by gpurent`), { code: 4200 });
      }
      return rpc(method, params);
    },
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); },
  };
})();
