// A form that runs one wallet action and reports every step in its own live region.
import { h } from "./dom.js";
import * as wallet from "./wallet.js";

/**
 * `fields`: input elements (already wrapped with labels); `body()`: the request body from them;
 * `done(result)`: called after the index has the transactions (usually: re-render the page).
 */
export function actionForm({ title, action, fields = [], submit, body = () => ({}), done = () => {}, testid, single = false }) {
  const status = h("p", { class: "status", role: "status", "aria-live": "polite", "data-testid": testid && `${testid}-status` });
  const button = h("button", { type: "submit", "data-testid": testid && `${testid}-submit` }, submit);
  const form = h("form", { class: single ? "action single" : "action", "data-testid": testid, "aria-label": title },
    fields, button, status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    status.classList.remove("error");
    const fail = (e) => { status.classList.add("error"); status.textContent = e.message || String(e); };
    let result;
    try {
      result = await wallet.act(action, body(), (text) => { status.textContent = text; });
    } catch (e) {
      fail(e);
      return;
    } finally {
      button.disabled = false;
      form.removeAttribute("aria-busy");
    }
    try {
      await done(result);
    } catch (e) {
      fail(e);
    }
  });
  return form;
}

/** One button that runs one action (end, finalize, withdraw an offer…). */
export function actionButton({ label, action, body, done = () => {}, testid }) {
  return actionForm({ title: label, action, submit: label, body: () => body, done, testid, single: true });
}
