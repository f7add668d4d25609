// A line chart drawn as SVG: one point per day, a y axis with round ticks, dates along the bottom.
"use strict";

(function (global) {
  const SVG = "http://www.w3.org/2000/svg";
  const PAD = {left: 44, right: 16, top: 16, bottom: 34};

  function node(tag, attrs, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, value);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // A round step so that about four ticks cover 0..max (1, 2 or 5 times a power of ten).
  function tickStep(max) {
    const rough = Math.max(max, 1) / 4;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
    return Math.max(1, step);
  }

  // points: [{statics_date: 'YYYY-MM-DD', value}] oldest first; width: the room it has, in CSS pixels (so the
  // text keeps its size). Answers the <svg>.
  function lineChart(points, label, width) {
    const WIDTH = Math.max(280, Math.round(width || 640));
    const HEIGHT = WIDTH < 500 ? 220 : 280;
    const svg = node("svg", {viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img",
      "aria-label": label, "data-points": points.length});
    const max = Math.max(0, ...points.map((p) => Number(p.value) || 0));
    const step = tickStep(max);
    const top = Math.ceil(Math.max(max, 1) / step) * step;
    const plotW = WIDTH - PAD.left - PAD.right, plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (i) => PAD.left + (points.length > 1 ? (i * plotW) / (points.length - 1) : plotW / 2);
    const y = (v) => PAD.top + plotH - (v / top) * plotH;

    for (let v = 0; v <= top; v += step) {
      svg.append(node("line", {x1: PAD.left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), class: "grid"}));
      svg.append(node("text", {x: PAD.left - 6, y: y(v) + 4, class: "tick y"}, String(v)));
    }
    // About one date label per 60 pixels, so they never overlap.
    const every = Math.ceil(points.length / Math.max(2, Math.floor(plotW / 60)));
    points.forEach((p, i) => {
      if (i % every === 0 || i === points.length - 1) {
        svg.append(node("text", {x: x(i), y: HEIGHT - 12, class: "tick x"}, p.statics_date.slice(5)));
      }
    });
    const coords = points.map((p, i) => `${x(i).toFixed(1)},${y(Number(p.value) || 0).toFixed(1)}`);
    if (points.length) {
      const base = y(0).toFixed(1);
      svg.append(node("polygon", {points: `${x(0)},${base} ${coords.join(" ")} ${x(points.length - 1)},${base}`,
        class: "area"}));
      svg.append(node("polyline", {points: coords.join(" "), class: "line"}));
    }
    points.forEach((p, i) => {
      const dot = node("circle", {cx: x(i), cy: y(Number(p.value) || 0), r: 3.5, class: "dot"});
      dot.append(node("title", {}, `${p.statics_date}: ${p.value}`));
      svg.append(dot);
    });
    return svg;
  }

  global.Charts = {lineChart};
})(window);
