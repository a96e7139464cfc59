// A page's data sections, refilled in place as the chain moves: `url` is read every `ms`, and
// when its answer changed each named box gets `build(data, refresh)[name]` again. Forms kept
// outside the boxes keep what is typed in them; a box whose action is in flight (aria-busy) is
// left alone until the next change.
import { get } from "./api.js";
import { h, clear, errorBox } from "./dom.js";

export function liveBoxes(names, url, build, ms = 4000) {
  const boxes = Object.fromEntries(names.map((name) => [name, h("div", {})]));
  const problems = h("div", {});
  let timer = null;
  let alive = true;
  let shown = "";
  const fill = (data) => {
    const key = JSON.stringify({ ...data, now: 0 });
    if (key === shown) return;
    shown = key;
    for (const [name, content] of Object.entries(build(data, refresh))) {
      if (boxes[name].querySelector("[aria-busy='true']")) shown = "";
      else clear(boxes[name]).append(content);
    }
  };
  async function refresh() {
    clearTimeout(timer);
    try {
      fill(await get(url));
      clear(problems);
    } catch (e) {
      clear(problems).append(errorBox(e.message));
    }
    if (alive) timer = setTimeout(refresh, ms);
  }
  return {
    boxes,
    problems,
    refresh,
    start(data) { fill(data); timer = setTimeout(refresh, ms); },
    stop() { alive = false; clearTimeout(timer); },
  };
}
