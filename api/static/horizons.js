// WattStream dashboard: the selected device's next 24 hours as a P10-P90 band around the P50,
// with the actuals known so far and the predicted peak hour marked, and a 7-day strip.
// Uses the helpers of dashboard.js ($, svg, html, getJSON, fmtTime, fmtDay, kwh, niceStep).
"use strict";

async function loadHorizons(id) {
  const path = `${API}/devices/${encodeURIComponent(id)}/forecasts`;
  try {
    const [day, week, health] = await Promise.all([
      getJSON(path, { horizon: "24h" }),
      getJSON(path, { horizon: "7d" }),
      getJSON(`${API}/devices/${encodeURIComponent(id)}/health`),
    ]);
    if (id !== state.selected) return;
    drawBand(day);
    drawWeek(week);
    drawHorizonHealth(health);
  } catch (error) {
    $("horizon-status").textContent = `could not load the horizons of ${id}: ${error.message}`;
  }
}

function drawBand(page) {
  const chart = $("horizon-chart");
  const tz = page.tz;
  const items = page.items;
  if (!items.length) {
    chart.replaceChildren();
    $("horizon-status").textContent = "No 24-hour forecast yet (the served model may forecast the next hour only).";
    return;
  }
  const W = 860, H = 220, left = 52, right = 16, top = 12, bottom = 36;
  const x0 = Date.parse(items[0].target_start), x1 = Date.parse(items[items.length - 1].target_end);
  const values = items.flatMap((i) => [i.p10_kwh, i.p90_kwh, i.actual_kwh ?? i.p50_kwh]);
  const yMax = Math.max(0.001, ...values) * 1.1, yMin = Math.min(0, ...values) * 1.1;
  const x = (ms) => left + ((ms - x0) / (x1 - x0)) * (W - left - right);
  const y = (v) => top + ((yMax - v) / (yMax - yMin)) * (H - top - bottom);
  const mid = (i) => x((Date.parse(i.target_start) + Date.parse(i.target_end)) / 2);
  const nodes = [];
  const step = niceStep((yMax - yMin) / 4);
  for (let v = Math.ceil(yMin / step) * step; v <= yMax; v += step) {
    nodes.push(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), stroke: "#e4e7ec" }));
    nodes.push(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#667085" }, v.toFixed(step < 0.1 ? 2 : 1)));
  }
  const upper = items.map((i) => `${mid(i).toFixed(1)},${y(i.p90_kwh).toFixed(1)}`);
  const lower = items.slice().reverse().map((i) => `${mid(i).toFixed(1)},${y(i.p10_kwh).toFixed(1)}`);
  nodes.push(svg("path", { class: "band", d: `M${upper.join(" L")} L${lower.join(" L")} Z` }));
  nodes.push(svg("path", { class: "median", d: "M" + items.map((i) => `${mid(i).toFixed(1)},${y(i.p50_kwh).toFixed(1)}`).join(" L") }));
  for (const i of items) {
    if (i.actual_kwh == null) continue;
    const a = x(Date.parse(i.target_start)), b = x(Date.parse(i.target_end));
    const bar = svg("rect", { class: "actual", x: a + 2, width: Math.max(1, b - a - 4), y: Math.min(y(i.actual_kwh), y(0)), height: Math.abs(y(0) - y(i.actual_kwh)) });
    bar.append(svg("title", {}, `${fmtTime(i.target_start, tz)}: actual ${kwh(i.actual_kwh, 3)}`));
    nodes.push(bar);
  }
  for (const [k, i] of items.entries()) {
    if (k % 3 !== 0) continue;
    nodes.push(svg("text", { x: mid(i), y: H - bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#667085" }, fmtTime(i.target_start, tz)));
  }
  if (page.peak) {
    const px = x(Date.parse(page.peak.target_start) + 1800e3);
    const marker = svg("circle", { id: "horizon-peak", class: "peak", cx: px, cy: y(page.peak.p50_kwh), r: 5 });
    marker.append(svg("title", {}, `predicted peak ${fmtTime(page.peak.target_start, tz)}: ${kwh(page.peak.p50_kwh)}`));
    nodes.push(marker);
  }
  chart.replaceChildren(...nodes);
  const peak = page.peak ? ` · predicted peak of ${page.peak.local_date}: ${fmtTime(page.peak.target_start, tz)} (${kwh(page.peak.p50_kwh)})` : "";
  $("horizon-status").textContent = `issued ${fmtTime(page.issue_time, tz)} (${tz}) by ${page.model_id}${peak}`;
}

function drawWeek(page) {
  const strip = $("week-strip");
  if (!page.items.length) {
    strip.replaceChildren(html("span", { class: "muted small" }, "No 7-day forecast yet (made at local midnight)."));
    return;
  }
  strip.replaceChildren(...page.items.map((i) => {
    const cell = html("div", { class: "day" });
    cell.append(
      html("b", {}, fmtDay(Date.parse(i.target_start), page.tz)),
      html("span", {}, kwh(i.p50_kwh, 1)),
      html("small", { class: "muted" }, `${i.p10_kwh.toFixed(1)}–${i.p90_kwh.toFixed(1)}`),
    );
    return cell;
  }));
}

// Rolling error of each horizon next to the next-hour health (GET /devices/{id}/health).
function drawHorizonHealth(page) {
  const names = { "1h": "next hour (24 h)", "24h": "24 h ahead (24 h)", "7d": "7 days ahead (14 days)" };
  const parts = page.horizons.map((h) => {
    if (!h.n) return `${names[h.horizon]}: no pairs yet`;
    const cover = h.coverage_p10_p90 == null ? "" : `, P10–P90 ${(100 * h.coverage_p10_p90).toFixed(0)} %`;
    return `${names[h.horizon]}: RMSE ${kwh(h.rmse_kwh, 2)} over ${h.n}${cover}`;
  });
  const status = page.latest ? `health ${page.latest.status}` : "no health yet";
  $("horizon-health").textContent = `${status} · ${parts.join(" · ")}`;
}
