// The JSON API of `gpurent web` (/work/plan/WEB-API.md): every read comes from the server's
// event index; transactions are planned by the server and signed by the browser wallet.

export class ApiError extends Error {
  constructor(message, status, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function answer(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError((body && body.error) || `${response.status} ${response.statusText}`, response.status,
      body && body.field);
  }
  return body;
}

export async function get(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) query.append(key, String(v));
  }
  const qs = query.toString();
  return answer(await fetch(`/api/v1${path}${qs ? `?${qs}` : ""}`, { headers: { accept: "application/json" } }));
}

export async function post(path, body) {
  return answer(await fetch(`/api/v1${path}`, {
    method: "POST", headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  }));
}

let metaPromise = null;
/** The deployment (chain, market, tokens, explorer); fetched once per page load. */
export function meta() {
  if (!metaPromise) metaPromise = get("/meta").catch((e) => { metaPromise = null; throw e; });
  return metaPromise;
}

/**
 * A human amount ("12.5") to the token's smallest unit as a decimal string, exactly (string
 * arithmetic, no floating point); throws a sentence like the server's parse_amount.
 */
export function parseUnits(text, decimals, what = "amount") {
  const s = String(text).trim().replace(/,/g, "");
  if (!/^\d*(\.\d*)?$/.test(s) || s === "" || s === ".") throw new Error(`${what}: "${text}" is not a positive number`);
  const [whole, frac = ""] = s.split(".");
  if (frac.length > decimals) throw new Error(`${what}: ${text} has more than ${decimals} decimals`);
  const digits = (whole + frac.padEnd(decimals, "0")).replace(/^0+(?=\d)/, "");
  return digits;
}
