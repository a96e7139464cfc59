// Small DOM helpers shared by the pages. Numbers are never formatted here: every amount comes
// from the server as a raw integer plus its `_display` string (oracle/units.py), and the page
// shows the string while keeping the raw value in data-raw (tests compare it with the chain).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A number from an API object: the `_display` string shown, the raw integer in data-raw. */
export function num(obj, field, { testid } = {}) {
  const raw = obj ? obj[field] : null;
  const display = obj ? obj[`${field}_display`] : null;
  const text = raw === null || raw === undefined ? "–" : (display ?? String(raw));
  return h("span", { class: "num", "data-field": field, "data-raw": raw ?? "", "data-testid": testid }, text);
}

/** A definition list of label/value rows; value may be a node or text. */
export function facts(rows, attrs = {}) {
  return h("dl", { class: "facts", ...attrs },
    rows.filter(Boolean).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

export function short(address) {
  return address ? `${address.slice(0, 6)}…${address.slice(-4)}` : "–";
}

export function addr(address, { link = false } = {}) {
  if (!address) return h("span", {}, "–");
  const code = h("code", { title: address, "data-address": address }, short(address));
  // the full address for screen readers after the visible short form (the name keeps the visible text)
  return link ? h("a", { href: `#/provider/${address}` }, code, h("span", { class: "visually-hidden" }, ` provider ${address}`)) : code;
}

/** A transaction hash: to the explorer when the deployment names one, else the index's view of it. */
export function txLink(hash, explorer) {
  if (!hash) return h("span", {}, "–");
  const href = explorer ? `${explorer.replace(/\/$/, "")}/tx/${hash}` : `/api/v1/tx/${hash}`;
  return h("a", { href, class: "tx", "data-tx": hash, title: hash },
    h("code", {}, `${hash.slice(0, 10)}…${hash.slice(-6)}`), h("span", { class: "visually-hidden" }, ` transaction ${hash}`));
}

export function table({ caption, columns, rows, empty = "none", testid }) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.length
    ? rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.class }, c.cell(r)))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))];
  return h("table", { "data-testid": testid }, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body));
}

export function section(title, id, ...children) {
  const headingId = `${id}-h`;
  return h("section", { id, "aria-labelledby": headingId }, h("h2", { id: headingId }, title), ...children);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) input.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), input,
    hint ? h("small", { id: hintId }, hint) : null);
}

export function errorBox(message) {
  return h("p", { class: "error", role: "alert" }, message);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}
