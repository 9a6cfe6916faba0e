// WattStream dashboard: plain JavaScript and SVG, no libraries, no build step, no CDN.
// Data: the REST API (/api/v1) for history, the websocket /api/v1/ws/live for the ticker.
// Every text that comes from the server is set with textContent, never parsed as HTML.
"use strict";

const API = "/api/v1";
const HOUR = 3600e3;
const KINDS = "readings,hourly,forecasts,health,alerts,status";
const TICKER_MAX = 60;
const SVG = "http://www.w3.org/2000/svg";
const query = new URLSearchParams(location.search);
// A read key, where reads need one: /#api_key=... (the fragment never reaches the server's logs).
const apiKey = new URLSearchParams(location.hash.slice(1)).get("api_key");
const keyHeaders = apiKey ? { "X-API-Key": apiKey } : {};

const state = {
  devices: new Map(), // id -> summary from /devices (health and status kept current live)
  selected: null,
  lastEventId: null,
  retry: 0,
  refreshTimer: null,
  tickerQueue: [],
  kpiFor: null, // device and time of the last KPI load
  kpiAt: 0,
  alerts: [], // open and acknowledged alerts, newest first
  notes: new Map(), // alert id -> the note typed so far
  alertsTimer: null,
};

// ----------------------------------------------------------------------------------- helpers
function $(id) { return document.getElementById(id); }

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function html(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

async function getJSON(path, params = {}) {
  const url = new URL(path, location.href);
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) for (const one of v) url.searchParams.append(k, one);
    else if (v != null) url.searchParams.set(k, v);
  }
  const response = await fetch(url, { headers: keyHeaders });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function fmtTime(iso, tz, opts = {}) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit", ...opts })
    .format(new Date(iso));
}

function fmtDay(ms, tz) {
  return new Intl.DateTimeFormat("en-GB", { timeZone: tz, day: "numeric", month: "short" }).format(new Date(ms));
}

function offsetName(ms, tz) {
  const part = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "shortOffset" })
    .formatToParts(new Date(ms)).find((p) => p.type === "timeZoneName");
  return part ? part.value.replace("GMT", "UTC") : "";
}

function localHour(ms, tz) {
  return Number(new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", hourCycle: "h23" })
    .format(new Date(ms)));
}

function kwh(value, digits = 2) { return value == null ? "–" : `${value.toFixed(digits)} kWh`; }

// ----------------------------------------------------------------------------- fleet and grid
async function loadDevices() {
  const items = [];
  let cursor = null;
  do {
    const page = await getJSON(`${API}/devices`, { limit: 500, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  state.devices = new Map(items.map((d) => [d.device_id, d]));
  renderSelect();
  renderGrid();
}

function renderSelect() {
  const select = $("device");
  const current = state.selected;
  select.replaceChildren(...[...state.devices.values()].map((d) =>
    html("option", { value: d.device_id }, `${d.device_id}${d.location_name ? ` · ${d.location_name}` : ""}`)));
  if (current && state.devices.has(current)) select.value = current;
}

function renderGrid() {
  const grid = $("health-grid");
  grid.replaceChildren(...[...state.devices.values()].map((d) => {
    const tile = html("button", {
      class: `tile${d.device_id === state.selected ? " selected" : ""}`,
      "data-device": d.device_id,
      "data-status": d.health || "none",
      "data-presence": d.status || "unknown",
      title: `${d.device_id}: health ${d.health || "not yet known"}, ${d.status || "no status"}`,
    }, d.device_id);
    tile.append(html("small", {}, `${d.health || "no health"} · ${d.status || "?"}`));
    tile.addEventListener("click", () => selectDevice(d.device_id));
    return tile;
  }));
}

async function loadFleet() {
  try {
    const s = await getJSON(`${API}/fleet/summary`);
    const h = s.health;
    const closed = s.last_closed_hour;
    const parts = [
      `${s.devices} devices: ${s.presence.online} online, ${s.presence.offline} offline`,
      `health ${h.green} green / ${h.amber} amber / ${h.red} red`,
      `this hour ${kwh(s.current_hour_kwh, 1)} (forecast ${kwh(s.current_hour_forecast_kwh, 1)})`,
    ];
    if (closed.hour_start) {
      parts.push(`last closed hour ${kwh(closed.actual_kwh, 1)} vs forecast ${kwh(closed.forecast_kwh, 1)}`);
    }
    $("fleet").textContent = parts.join(" · ");
  } catch (error) {
    $("fleet").textContent = `fleet summary unavailable: ${error.message}`;
  }
}

// --------------------------------------------------------------------------------------- KPIs
function localDate(ms, tz) { // YYYY-MM-DD of the instant in tz (en-CA formats it so)
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date(ms));
}

function dayBefore(isoDate) {
  const [y, m, d] = isoDate.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d - 1)).toISOString().slice(0, 10);
}

function money(k) {
  if (k.cost == null) return Object.entries(k.cost_by_currency).map(([c, v]) => `${v.toFixed(2)} ${c}`).join(" + ");
  return `${k.cost.toFixed(2)} ${k.currency}`;
}

function kpiCells(k, tz) {
  const peak = k.peak_kw == null ? "–" : `${k.peak_kw.toFixed(2)} kW at ${fmtTime(k.peak_at, tz)}`;
  return [
    kwh(k.energy_kwh, 1), money(k), `${k.carbon_kg.toFixed(1)} kg CO₂e`, peak,
    k.load_factor == null ? "–" : k.load_factor.toFixed(2),
  ];
}

// Specific energy consumption, for devices that report production (industrial lines); the
// column shows only when a row of the table has one.
function secCell(k) {
  const td = html("td", { class: "sec", "data-label": "SEC" }, k.sec_kwh_per_unit == null ? "–" : `${k.sec_kwh_per_unit.toPrecision(3)} kWh/unit`);
  if (k.production_units != null) td.title = `${k.production_units.toFixed(0)} units produced`;
  return td;
}

function showSec(table, figures) {
  table.classList.toggle("has-sec", figures.some((k) => k.sec_kwh_per_unit != null));
}

// Each figure's cell carries its column's name: at phone width a row is a card of labelled figures.
const KPI_LABELS = ["energy", "cost", "carbon", "peak (local)", "load factor"];
const labelled = (labels, texts) => texts.map((text, i) => html("td", { "data-label": labels[i] }, text));

function kpiRow(label, k, tz) {
  const tr = html("tr");
  tr.append(html("td", {}, label), ...labelled(KPI_LABELS, kpiCells(k, tz)), secCell(k));
  const complete = html("td", { class: k.completeness < 0.99 ? "gap" : "", "data-label": "complete" }, `${(100 * k.completeness).toFixed(0)} %`);
  complete.title = `${k.quarters} of ${k.expected_quarters} device-quarters with readings`;
  tr.append(complete);
  return tr;
}

const KIND_LABELS = ["devices", "energy", "cost", "carbon", "peak", "load factor"];
const KPI_EVERY = 60e3; // the fleet KPIs read every device's day: not on every live event
async function loadKpis(id) {
  if (state.kpiFor === id && Date.now() - state.kpiAt < KPI_EVERY) return;
  state.kpiFor = id;
  state.kpiAt = Date.now();
  const device = state.devices.get(id);
  const deviceTz = (device && device.tz) || "UTC";
  const browserTz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const today = localDate(Date.now(), deviceTz);
  const fleetToday = localDate(Date.now(), browserTz);
  try {
    const path = `${API}/devices/${encodeURIComponent(id)}/kpis`;
    const [dToday, dYesterday, fToday, fYesterday] = await Promise.all([
      getJSON(path, { period: "day", date: today }),
      getJSON(path, { period: "day", date: dayBefore(today) }),
      getJSON(`${API}/fleet/kpis`, { period: "day", date: fleetToday, group_by: "kind" }),
      getJSON(`${API}/fleet/kpis`, { period: "day", date: dayBefore(fleetToday) }),
    ]);
    if (id !== state.selected) return;
    const rows = [dToday.kpis, dYesterday.kpis, fToday.fleet, fYesterday.fleet];
    $("kpi-table").tBodies[0].replaceChildren(
      kpiRow(`${id} today`, dToday.kpis, deviceTz),
      kpiRow(`${id} yesterday`, dYesterday.kpis, deviceTz),
      kpiRow("fleet today", fToday.fleet, "UTC"),
      kpiRow("fleet yesterday", fYesterday.fleet, "UTC"),
    );
    showSec($("kpi-table"), rows);
    $("kind-table").tBodies[0].replaceChildren(...fToday.groups.map((g) => {
      const tr = html("tr", { "data-kind": g.group });
      const [energy, cost, carbon, peak, lf] = kpiCells(g, "UTC");
      tr.append(html("td", {}, g.group), ...labelled(KIND_LABELS, [String(g.devices), energy, cost, carbon, peak, lf]), secCell(g));
      return tr;
    }));
    showSec($("kind-table"), fToday.groups);
    $("kpi-status").textContent = `Device: its own local days (${deviceTz}). Fleet: each device's own local ${fleetToday}` +
      " (fleet peak times in UTC). Tariffs: GET /api/v1/tariffs.";
  } catch (error) {
    $("kpi-status").textContent = `KPIs unavailable: ${error.message}`;
  }
}

// -------------------------------------------------------------------------------------- chart
function selectDevice(id) {
  if (!id) return;
  state.selected = id;
  $("device").value = id;
  history.replaceState(null, "", `${location.search}#${encodeURIComponent(id)}`);
  for (const tile of document.querySelectorAll(".tile")) {
    tile.classList.toggle("selected", tile.dataset.device === id);
  }
  loadDevice(id);
}

async function loadDevice(id) {
  const end = new Date();
  const start = new Date(end.getTime() - 24 * HOUR);
  $("chart-status").textContent = "loading…";
  try {
    const [agg, fc, device] = await Promise.all([
      getJSON(`${API}/devices/${encodeURIComponent(id)}/aggregates`, {
        bucket: "1h", tz: "device", start: start.toISOString(), end: end.toISOString(),
      }),
      getJSON(`${API}/devices/${encodeURIComponent(id)}/forecasts`, {
        start: start.toISOString(), end: new Date(end.getTime() + 2 * HOUR).toISOString(),
      }),
      getJSON(`${API}/devices/${encodeURIComponent(id)}`),
    ]);
    if (id !== state.selected) return; // another device was picked meanwhile
    const info = [device.kind, device.location_name, device.tz, device.status].filter(Boolean);
    $("device-info").textContent = info.join(" · ");
    drawChart(agg, fc, end.getTime());
    loadKpis(id);
    loadHorizons(id); // horizons.js
    $("chart-status").textContent = `${agg.items.length} hours with readings, ${fc.items.length} forecasts`;
  } catch (error) {
    $("chart-status").textContent = `could not load ${id}: ${error.message}`;
  }
}

function latestPerHour(forecasts) {
  const byHour = new Map();
  for (const f of forecasts) {
    const key = Date.parse(f.hour_start);
    const seen = byHour.get(key);
    if (!seen || Date.parse(f.issued_at) > Date.parse(seen.issued_at)) byHour.set(key, f);
  }
  return [...byHour.values()].sort((a, b) => Date.parse(a.hour_start) - Date.parse(b.hour_start));
}

function drawChart(agg, fc, now) {
  const chart = $("chart");
  const tz = agg.tz;
  const W = 860, H = 300, left = 52, right = 16, top = 16, bottom = 58;
  const forecasts = latestPerHour(fc.items);
  const next = fc.latest && Date.parse(fc.latest.hour_end) > now ? fc.latest : null;
  const x0 = Date.parse(agg.start);
  const x1 = Math.max(Date.parse(agg.end), next ? Date.parse(next.hour_end) : 0, x0 + HOUR);
  const values = [
    ...agg.items.map((i) => i.energy_kwh),
    ...forecasts.map((f) => f.predicted_kwh),
    ...(next ? [next.predicted_kwh] : []),
  ];
  const yMax = Math.max(0.001, ...values) * 1.15;
  const yMin = Math.min(0, ...values) * 1.15;
  const x = (ms) => left + ((ms - x0) / (x1 - x0)) * (W - left - right);
  const y = (v) => top + ((yMax - v) / (yMax - yMin)) * (H - top - bottom);
  const nodes = [];

  // Horizontal grid and the energy axis.
  const step = niceStep((yMax - yMin) / 4);
  for (let v = Math.ceil(yMin / step) * step; v <= yMax; v += step) {
    nodes.push(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "gridline", stroke: "#e4e7ec" }));
    nodes.push(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "axis-label", "font-size": 11, fill: "#667085" }, v.toFixed(step < 0.1 ? 2 : 1)));
  }
  nodes.push(svg("text", { x: 12, y: top + (H - top - bottom) / 2, transform: `rotate(-90 12 ${top + (H - top - bottom) / 2})`, "text-anchor": "middle", class: "axis-title" }, "kWh per hour"));

  // Actual energy per local hour.
  for (const item of agg.items) {
    const a = x(Date.parse(item.start)), b = x(Date.parse(item.end));
    const bar = svg("rect", {
      class: `bar${item.quarters < item.expected_quarters ? " partial" : ""}`,
      x: a + 1, width: Math.max(1, b - a - 2),
      y: Math.min(y(item.energy_kwh), y(0)), height: Math.abs(y(0) - y(item.energy_kwh)),
    });
    bar.append(svg("title", {}, `${fmtTime(item.start, tz)}–${fmtTime(item.end, tz)}: ${kwh(item.energy_kwh, 3)}`));
    nodes.push(bar);
  }

  // Forecasts: a line through the hour centres, a dot per hour.
  const points = forecasts.filter((f) => Date.parse(f.hour_start) >= x0)
    .map((f) => [x((Date.parse(f.hour_start) + Date.parse(f.hour_end)) / 2), y(f.predicted_kwh), f]);
  if (points.length > 1) {
    nodes.push(svg("path", { class: "forecast", d: points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join(" ") }));
  }
  for (const [px, py, f] of points) {
    const dot = svg("circle", { class: "forecast-point", cx: px, cy: py, r: 3.5 });
    dot.append(svg("title", {}, `forecast ${fmtTime(f.hour_start, tz)}: ${kwh(f.predicted_kwh, 3)}` +
      (f.actual_kwh != null ? `, actual ${kwh(f.actual_kwh, 3)}` : "")));
    nodes.push(dot);
  }
  if (next) {
    const a = x(Date.parse(next.hour_start)), b = x(Date.parse(next.hour_end));
    nodes.push(svg("rect", { class: "next", x: a + 1, width: Math.max(1, b - a - 2), y: Math.min(y(next.predicted_kwh), y(0)), height: Math.abs(y(0) - y(next.predicted_kwh)) }));
  }

  // Time axis in the device's local time: a tick every local hour, a label every three.
  const axisY = H - bottom;
  nodes.push(svg("line", { x1: left, x2: W - right, y1: y(0), y2: y(0), stroke: "#98a2b3" }));
  let lastDay = null;
  for (let t = x0; t <= x1; t += HOUR) {
    const hour = localHour(t, tz);
    nodes.push(svg("line", { x1: x(t), x2: x(t), y1: axisY, y2: axisY + (hour % 3 === 0 ? 6 : 3), stroke: "#98a2b3" }));
    if (hour % 3 === 0) {
      nodes.push(svg("text", { x: x(t), y: axisY + 18, "text-anchor": "middle", class: "tick", "font-size": 11, fill: "#667085" }, fmtTime(new Date(t).toISOString(), tz)));
      const day = fmtDay(t, tz);
      if (day !== lastDay) {
        nodes.push(svg("text", { x: x(t), y: axisY + 31, "text-anchor": "middle", "font-size": 10, fill: "#667085" }, day));
        lastDay = day;
      }
    }
  }
  nodes.push(svg("text", { id: "zone-label", class: "axis-title", x: left + (W - left - right) / 2, y: H - 6, "text-anchor": "middle" },
    `local time, ${tz} (${offsetName(now, tz)})`));
  chart.replaceChildren(...nodes);
  chart.__hourScale = { x, t0: x0, t1: x1, top, height: H - top - bottom };
  drawAlertBands();

  $("next-hour").replaceChildren();
  if (next) {
    $("next-hour").append(
      `Next hour ${fmtTime(next.hour_start, tz)}–${fmtTime(next.hour_end, tz)} (${tz}): forecast `,
      html("b", { id: "next-hour-kwh" }, kwh(next.predicted_kwh)),
      next.baseline_kwh != null ? ` · same hour yesterday ${kwh(next.baseline_kwh)}` : "",
    );
  } else {
    $("next-hour").textContent = "No forecast for the next hour yet.";
  }
}

function niceStep(raw) {
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= raw) return m * power;
  return 10 * power;
}

// ------------------------------------------------------------------------------------ alerts
const KIND_NAMES = { residual: "off forecast", level_shift: "level shift", silent: "silent", stuck: "stuck meter" };

async function loadAlerts() {
  try {
    const page = await getJSON(`${API}/alerts`, { state: ["open", "acknowledged"], limit: 100 });
    state.alerts = page.items;
    renderAlerts();
    if (state.selected) drawAlertBands();
  } catch (error) {
    $("alert-status").textContent = `alerts unavailable: ${error.message}`;
  }
}

function renderAlerts() {
  const open = state.alerts.filter((a) => a.state === "open").length;
  const count = $("alert-count");
  count.textContent = `${open} open`;
  count.classList.toggle("alarm", open > 0);
  $("alert-list").replaceChildren(...state.alerts.map((a) => {
    const device = state.devices.get(a.device_id);
    const tz = (device && device.tz) || "UTC";
    const li = html("li", { class: `alert ${a.severity} ${a.state}`, "data-alert": a.alert_id,
      "data-device": a.device_id, "data-kind": a.kind, "data-state": a.state });
    const since = `${fmtDay(Date.parse(a.hour_start), tz)} ${fmtTime(a.hour_start, tz)}`;
    li.append(
      html("span", { class: "severity" }, a.severity),
      html("b", {}, `${a.device_id} · ${KIND_NAMES[a.kind] || a.kind}`),
      html("span", { class: "muted" }, `since ${since} (${a.hours} h)`),
      html("span", { class: "message" }, a.message),
    );
    if (a.state === "acknowledged") {
      li.append(html("span", { class: "ack-by muted" },
        `acknowledged by ${a.acknowledged_by}${a.note ? `: ${a.note}` : ""}`));
    }
    // One note field: the acknowledgement's note or the resolution's, whichever button is used.
    const note = html("input", { class: "ack-note", placeholder: "note (optional)", maxlength: 2000 });
    note.value = state.notes.get(a.alert_id) || ""; // the list is redrawn as alerts change
    note.addEventListener("input", () => state.notes.set(a.alert_id, note.value));
    const buttons = html("span", { class: "actions" });
    if (a.state === "open") {
      const ack = html("button", { class: "ack", type: "button" }, "Acknowledge");
      ack.addEventListener("click", () => actOnAlert(a.alert_id, "acknowledge", note.value));
      buttons.append(ack);
    }
    const resolve = html("button", { class: "resolve", type: "button" }, "Resolve");
    resolve.addEventListener("click", () => actOnAlert(a.alert_id, "resolve", note.value));
    buttons.append(resolve);
    li.append(note, buttons);
    li.querySelector("b").addEventListener("click", () => selectDevice(a.device_id));
    return li;
  }));
  if (!state.alerts.length) $("alert-list").append(html("li", { class: "muted" }, "No open alerts."));
}

const ACTED = { acknowledge: "acknowledged", resolve: "resolved" };

async function actOnAlert(alertId, action, note) {
  const by = $("ack-by").value.trim();
  if (!by) { $("alert-status").textContent = `Enter your name to ${action} an alert.`; $("ack-by").focus(); return; }
  const response = await fetch(`${API}/alerts/${encodeURIComponent(alertId)}/${action}`, {
    method: "POST",
    headers: { ...keyHeaders, "Content-Type": "application/json" },
    body: JSON.stringify({ by, note: note.trim() || null }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    $("alert-status").textContent = `could not ${action}: ${body.detail || response.statusText}`;
    return;
  }
  state.notes.delete(alertId);
  $("alert-status").textContent = `${alertId} ${ACTED[action]}.`;
  if (action === "resolve") loadQuality(); // its hours may have changed
  await loadAlerts();
}

// How good the alerts are against the injected anomalies (GET /alerts/quality, last 7 days).
const QUALITY_EVERY = 60e3;
function pct(value) { return value == null ? "–" : `${Math.round(value * 100)}%`; }

async function loadQuality() {
  try {
    const quality = await getJSON(`${API}/alerts/quality`);
    $("quality-table").tBodies[0].replaceChildren(...quality.kinds.map((k) => {
      const tr = html("tr", { "data-kind": k.kind });
      tr.append(...[
        KIND_NAMES[k.kind] || k.kind,
        String(k.alerts),
        `${pct(k.precision)} (${k.true_alerts}/${k.alerts})`,
        `${pct(k.recall)} (${k.detected}/${k.injected})`,
      ].map((t) => html("td", {}, t)));
      return tr;
    }));
    $("quality-status").textContent = quality.labels
      ? `${quality.labels} injected ${quality.labels === 1 ? "anomaly" : "anomalies"} over the last 7 days.`
      : "No injected anomalies (ground-truth labels) in the last 7 days: nothing to score against.";
  } catch (error) {
    $("quality-status").textContent = `alert quality unavailable: ${error.message}`;
  }
}

function scheduleAlerts() {
  clearTimeout(state.alertsTimer);
  state.alertsTimer = setTimeout(loadAlerts, 1000);
}

function drawAlertBands() {
  // The selected device's alerts as bands over the chart's hours (drawn by drawChart's scale).
  const chart = $("chart");
  chart.querySelectorAll("rect.alert-band").forEach((n) => n.remove());
  const scale = chart.__hourScale;
  if (!scale) return;
  for (const a of state.alerts.filter((x) => x.device_id === state.selected)) {
    const from = Math.max(Date.parse(a.hour_start), scale.t0);
    const to = Math.min(Date.parse(a.last_hour_start) + HOUR, scale.t1);
    if (to <= from) continue;
    const band = svg("rect", { class: `alert-band ${a.severity}`, x: scale.x(from), y: scale.top,
      width: Math.max(2, scale.x(to) - scale.x(from)), height: scale.height, "data-alert": a.alert_id });
    band.append(svg("title", {}, `${a.kind}: ${a.message}`));
    chart.prepend(band);
  }
}

// --------------------------------------------------------------------------------- live feed
function describe(frame) {
  const d = frame.data;
  const device = state.devices.get(frame.device_id);
  const tz = (device && device.tz) || "UTC";
  switch (frame.kind) {
    case "readings": return `${d.power.value.toFixed(2)} kW at ${fmtTime(d.ts, d.tz)} (${d.energy.value.toFixed(4)} kWh)`;
    case "hourly": return `hour ${fmtTime(d.hour_start, d.tz)} closed: ${kwh(d.energy_kwh, 3)}, ${Math.round(d.completeness * 100)}% complete`;
    case "forecasts": return `forecast for ${fmtTime(d.hour_start, tz)}: ${kwh(d.predicted_kwh, 3)}`;
    case "health": return `health ${d.status}${d.rmse_ratio != null ? ` (RMSE ratio ${d.rmse_ratio.toFixed(2)})` : ""}`;
    case "alerts": return `${d.resolved_hour ? "resolved" : d.severity}: ${d.alert_kind ? `${KIND_NAMES[d.alert_kind] || d.alert_kind}, ` : ""}${d.message}`;
    case "status": return `now ${d.status}`;
    default: return frame.kind;
  }
}

function onEvent(frame) {
  state.lastEventId = frame.id;
  const device = state.devices.get(frame.device_id);
  if (frame.kind === "health" && device) { device.health = frame.data.status; renderGrid(); }
  if (frame.kind === "status" && device) { device.status = frame.data.status; renderGrid(); }
  if (!device && (frame.kind === "status" || frame.kind === "health")) scheduleDevices();
  state.tickerQueue.push(frame);
  if (frame.device_id === state.selected && ["hourly", "forecasts"].includes(frame.kind)) scheduleRefresh();
  if (frame.kind === "alerts") scheduleAlerts();
}

function flushTicker() {
  const queued = state.tickerQueue.splice(0).slice(-TICKER_MAX);
  if (!queued.length) return;
  const ticker = $("ticker");
  for (const frame of queued) {
    const li = html("li", { class: `${frame.kind} fresh`, "data-kind": frame.kind, "data-device": frame.device_id });
    li.append(
      html("span", { class: "when muted" }, new Date().toLocaleTimeString("en-GB")),
      html("span", { class: "kind" }, `${frame.kind}${frame.coalesced ? ` ×${frame.coalesced + 1}` : ""}`),
      html("span", {}, `${frame.device_id}: ${describe(frame)}`),
    );
    ticker.prepend(li);
  }
  while (ticker.children.length > TICKER_MAX) ticker.lastElementChild.remove();
}

function scheduleRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => { loadDevice(state.selected); loadFleet(); }, 1500);
}

let devicesTimer = null;
function scheduleDevices() {
  if (devicesTimer) return;
  devicesTimer = setTimeout(async () => { devicesTimer = null; await loadDevices(); }, 3000);
}

function setLive(text, connected) {
  const pill = $("live-status");
  pill.textContent = text;
  pill.classList.toggle("connected", connected);
}

// The server says whether its Kafka answers: while it does not, nothing live arrives.
function setUpstream(upstream) {
  if (upstream && upstream.kafka === "down") setLive("connected; Kafka down, live data paused", false);
  else setLive("connected", true);
}

function connectLive() {
  const url = new URL(`${API}/ws/live`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("kinds", KINDS);
  if (state.lastEventId) url.searchParams.set("last_event_id", state.lastEventId);
  const ws = new WebSocket(url);
  // Browsers cannot set headers on a websocket: the key goes in the first message.
  if (apiKey) ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "auth", api_key: apiKey })));
  ws.addEventListener("message", (message) => {
    const frame = JSON.parse(message.data);
    if (frame.type === "event") onEvent(frame);
    else if (frame.type === "hello") {
      state.retry = 0;
      setUpstream(frame.upstream);
      if (frame.resume.status === "gap") { loadDevices(); scheduleRefresh(); } // missed events
    } else if (frame.type === "upstream") {
      setUpstream(frame);
      if (frame.kafka === "up") scheduleRefresh();
    } else if (frame.type === "error") setLive(frame.detail, false);
  });
  ws.addEventListener("close", () => {
    setLive("reconnecting", false);
    const delay = Math.min(30000, 500 * 2 ** state.retry++) * (0.5 + Math.random() / 2);
    setTimeout(connectLive, delay);
  });
}

// -------------------------------------------------------------------------------------- start
async function start() {
  $("device").addEventListener("change", (e) => selectDevice(e.target.value));
  setInterval(flushTicker, 250);
  setInterval(loadFleet, 60000);
  connectLive();
  try {
    await loadDevices();
  } catch (error) {
    $("chart-status").textContent = `could not list devices: ${error.message}`;
    return;
  }
  loadFleet();
  loadAlerts();
  setInterval(loadAlerts, 60000);
  loadQuality();
  setInterval(loadQuality, QUALITY_EVERY);
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = state.devices.keys().next().value;
  selectDevice(state.devices.has(wanted) ? wanted : first);
}

start();
