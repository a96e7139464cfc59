// Live line charts (uPlot, from npm, served from /static/vendor) of a rental's settled reports.
import uPlot from "../vendor/uPlot.esm.js";
import { h } from "./dom.js";

const SERIES = [
  { key: "power_w", title: "Power", unit: "W", scale: 1 },
  { key: "utilization_bps", title: "GPU utilization", unit: "%", scale: 0.01 },
  { key: "energy_mj", title: "Energy (cumulative)", unit: "kWh", scale: 1 / 3.6e9 },
  { key: "paid", title: "Cost (cumulative)", unit: null, scale: null },
];

/** Four charts in `container`; returns update(points, token) that redraws them. */
export function rentalCharts(container) {
  const charts = [];
  for (const s of SERIES) {
    const id = `chart-${s.key}`;
    const latest = h("p", { class: "latest", "data-testid": `${id}-latest` }, "no settled report yet");
    const plot = h("div", { class: "plot", role: "img", "aria-label": `${s.title} over time` });
    const figure = h("figure", { class: "chart", id, "data-testid": id, "data-points": 0 },
      h("figcaption", {}, s.title), plot, latest);
    container.append(figure);
    charts.push({ s, figure, plot, latest, chart: null });
  }

  // A chart is drawn at its box's width once the page is on screen (pages render detached),
  // and follows the box when the window resizes.
  const observer = new ResizeObserver(() => { for (const c of charts) draw(c); });
  for (const c of charts) observer.observe(c.plot);

  function draw(c) {
    const width = Math.floor(c.plot.clientWidth);
    if (!c.data || width < 50) return;
    if (!c.chart) {
      c.chart = new uPlot({
        width, height: 180, legend: { show: false },
        scales: { x: { time: true } },
        axes: [{ stroke: "#222" }, { stroke: "#222", label: c.unit, size: 64,
          values: (u, vals) => vals.map((v) => (v === null ? "" : String(+v.toPrecision(3)))) }],
        series: [{}, { label: `${c.s.title} (${c.unit})`, stroke: "#0b5cad", width: 2, fill: "rgba(11,92,173,0.12)",
          points: { show: true, size: 4 } }],
      }, c.data, c.plot);
    } else {
      if (c.chart.width !== width) c.chart.setSize({ width, height: 180 });
      c.chart.setData(c.data);
    }
  }

  function update(points, token) {
    for (const c of charts) {
      const scale = c.s.scale ?? 1 / 10 ** token.decimals;
      c.unit = c.s.unit ?? token.symbol;
      const xs = points.map((p) => p.period_end);
      const ys = points.map((p) => (p[c.s.key] === null || p[c.s.key] === undefined ? null : p[c.s.key] * scale));
      c.figure.dataset.points = String(points.length);
      if (points.length) {
        const last = points[points.length - 1];
        c.latest.textContent = `latest (report ${last.sequence}): ${last[`${c.s.key}_display`] ?? last[c.s.key]}`;
        c.latest.dataset.raw = last[c.s.key];
      }
      c.data = [xs, ys];
      draw(c);
    }
  }

  update.stop = () => observer.disconnect();
  return update;
}
