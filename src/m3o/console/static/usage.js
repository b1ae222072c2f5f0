// The usage chart: calls per day, one line per API, drawn by uPlot into #usage-chart from
// the JSON block #usage-data. Progressive enhancement: the table below the chart has the
// same numbers, and the page works without this file.
"use strict";

(() => {
  // Colour-blind-safe (Okabe-Ito), each at least 3:1 against white.
  const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9", "#000000"];

  const draw = () => {
    const target = document.getElementById("usage-chart");
    const source = document.getElementById("usage-data");
    if (!target || !source || typeof window.uPlot !== "function") return;
    let data;
    try {
      data = JSON.parse(source.textContent);
    } catch (_) {
      return;
    }
    if (!data || !Array.isArray(data.days) || !Array.isArray(data.series) || !data.series.length) {
      return;
    }
    const uPlot = window.uPlot;
    const width = () => Math.max(280, target.clientWidth || 600);
    const options = {
      width: width(),
      height: 280,
      // The days are UTC days: show them so, whatever the browser's time zone.
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [
        {},
        { values: (_u, ticks) => ticks.map((tick) => (Number.isInteger(tick) ? String(tick) : "")) },
      ],
      series: [
        { label: "Day", value: "{YYYY}-{MM}-{DD}" },
        ...data.series.map((one, index) => ({
          label: String(one.name),
          stroke: COLOURS[index % COLOURS.length],
          width: 2,
          points: { show: true, size: 5 },
          value: (_u, count) => (count === null || count === undefined ? "–" : String(count)),
        })),
      ],
    };
    const columns = [data.days, ...data.series.map((one) => one.counts)];
    target.classList.add("drawn");
    const plot = new uPlot(options, columns, target);
    if (typeof ResizeObserver === "function") {
      let drawnWidth = options.width;
      new ResizeObserver(() => {
        if (width() === drawnWidth) return;
        drawnWidth = width();
        plot.setSize({ width: drawnWidth, height: 280 });
      }).observe(target);
    }
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
