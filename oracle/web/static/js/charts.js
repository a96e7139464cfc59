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

  return function update(points, token) {
    for (const c of charts) {
      const scale = c.s.scale ?? 1 / 10 ** token.decimals;
      const unit = c.s.unit ?? token.symbol;
      const xs = points.map((p) => p.period_end);
      const ys = points.map((p) => (p[c.s.key] === null || p[c.s.key] === undefined ? null : p[c.s.key] * scale));
      c.figure.dataset.points = String(points.length);
      if (points.length) {
        const last = points[points.length - 1];
        c.latest.textContent = `latest (report ${last.sequence}): ${last[`${c.s.key}_display`] ?? last[c.s.key]}`;
        c.latest.dataset.raw = last[c.s.key];
      }
      const data = [xs, ys];
      if (!c.chart) {
        const width = Math.max(260, Math.min(560, c.plot.clientWidth || 420));
        c.chart = new uPlot({
          width, height: 180, legend: { show: false },
          scales: { x: { time: true } },
          axes: [{ stroke: "#222" }, { stroke: "#222", label: unit, size: 60 }],
          series: [{}, { label: `${c.s.title} (${unit})`, stroke: "#0b5cad", width: 2, fill: "rgba(11,92,173,0.12)", points: { show: true, size: 4 } }],
        }, data, c.plot);
      } else {
        c.chart.setData(data);
      }
    }
  };
}
