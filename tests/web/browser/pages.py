"""Helpers to read the pages the way the tests check them: every number is an element with
data-field (its name), data-raw (the raw integer from the API) and its text (the `_display`)."""

from __future__ import annotations

import time
from typing import Any

from .conftest import PAGE_LOADS

TIMEOUT_MS = 30_000


def visit(page: Any, url: str, ready: str, name: str | None = None) -> None:
    """Open ``url`` and wait for ``ready``; records how long the content took to show."""
    started = time.monotonic()
    if page.url == url:
        page.reload()  # the same URL (a hash route): goto would not load the page again
    else:
        page.goto(url)
    page.wait_for_selector(ready, timeout=TIMEOUT_MS)
    shown_ms = (time.monotonic() - started) * 1000
    api_ms = page.evaluate("""() => Math.max(0, ...performance.getEntriesByType('resource')
        .filter(e => e.name.includes('/api/v1/')).map(e => e.responseStart - e.requestStart))""")
    if name:
        PAGE_LOADS.append((name, shown_ms, api_ms))


def numbers(page: Any, scope: str) -> dict[str, list[tuple[int | None, str]]]:
    """field -> [(raw, shown text), ...] of every number under ``scope``."""
    rows = page.eval_on_selector_all(
        f"{scope} [data-field]", "els => els.map(e => [e.dataset.field, e.dataset.raw, e.textContent.trim()])")
    out: dict[str, list[tuple[int | None, str]]] = {}
    for field, raw, text in rows:
        out.setdefault(field, []).append((int(raw) if raw not in ("", None) else None, text))
    return out


def one(page: Any, scope: str, field: str) -> tuple[int | None, str]:
    values = numbers(page, scope).get(field)
    assert values, f"no {field} under {scope}; page errors {getattr(page, 'js_errors', None)}; " + (
        page.inner_html(scope)[:1500] if page.locator(scope).count() else "(scope absent) " + page.inner_html("main")[:1500])
    assert len(values) == 1, f"{field} appears {len(values)} times under {scope}"
    return values[0]


def connect(page: Any) -> None:
    page.click("#connect")
    page.wait_for_function("document.getElementById('account').textContent.startsWith('account')", timeout=TIMEOUT_MS)


def run_action(page: Any, testid: str, timeout_ms: int = 90_000) -> str:
    """Submit the action form ``testid`` and wait until its status says done (or fails); a form
    that went away (the page re-rendered after the action) means done too."""
    page.click(f"[data-testid='{testid}-submit']")
    handle = page.wait_for_function(
        """(id) => { const s = document.querySelector(`[data-testid='${id}-status']`);
                     if (!s) return "done (page re-rendered)";
                     if (s.classList.contains('error')) return "error: " + s.textContent;
                     return s.textContent.startsWith('done') ? s.textContent : null; }""",
        arg=testid, timeout=timeout_ms)
    text = handle.json_value()
    assert text.startswith("done"), f"{testid}: {text}"
    return text


def axe_violations(page: Any, vendor_axe: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=vendor_axe)
    result = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result if v["impact"] in ("serious", "critical")
    ]
