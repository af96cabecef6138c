// gradsight playground: controls <-> URL <-> runs on the server; views drawn on canvas.
// The server's /api/catalog is the only list of activations, datasets, inits and optimizers.
"use strict";

const S = { catalog: null, lessons: [], cfg: {}, b: {}, compare: false, tab: "train",
            panels: [], curves: new Map(), lesson: null, autoplay: false };
const PALETTE = ["#2563eb", "#e07a1f", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04",
                 "#db2777", "#4b5563", "#65a30d"];
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: body ? { "Content-Type": "application/json" } : {},
                                  body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) { const err = new Error((data && data.detail) || res.statusText); err.data = data; throw err; }
  return data;
}

// ---------------------------------------------------------------- config <-> controls <-> URL
const NUMERIC = new Set(["noise", "test_fraction", "depth", "width", "weight_var", "lr", "batch_size", "steps", "seed"]);
const BOOL = new Set(["residual", "layer_norm"]);
const B_FIELDS = ["activation", "init", "depth", "lr", "optimizer"];

function actInfo(name) { return S.catalog.activations.find(a => a.name === name); }

function fromText(key, text) {
  if (text === null || text === undefined) return undefined;
  if (BOOL.has(key)) return text === "1" || text === "true";
  if (NUMERIC.has(key)) { if (text === "" && key === "noise") return null; const v = Number(text); return Number.isFinite(v) ? v : undefined; }
  if (key === "activation_params" || key === "layer_activation_params") { if (text === "" && key !== "activation_params") return null; try { return JSON.parse(text); } catch { return undefined; } }
  if (key === "layer_activations") return text ? text.split(",").map(s => s.trim()).filter(Boolean) : null;
  return text;
}
function toText(key, v) {
  if (v === null || v === undefined) return "";
  if (BOOL.has(key)) return v ? "1" : "0";
  if (key === "activation_params" || key === "layer_activation_params") return JSON.stringify(v);
  if (key === "layer_activations") return v.join(",");
  return String(v);
}

// The per-layer input: "leaky_relu(negative_slope=0.2), elu(alpha=0.5), relu" <-> the two
// run-config fields layer_activations (names) and layer_activation_params (one object a layer).
function perLayerText(cfg) {
  if (!cfg.layer_activations && !cfg.layer_activation_params) return "";
  const names = cfg.layer_activations || Array(cfg.depth).fill(cfg.activation), ps = cfg.layer_activation_params;
  return names.map((n, i) => {
    const p = ps && ps[i] ? Object.entries(ps[i]) : [];
    return p.length ? `${n}(${p.map(([k, v]) => `${k}=${v}`).join(", ")})` : n;
  }).join(", ");
}
function parsePerLayer(text) {
  const items = [];
  let depth = 0, cur = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) { items.push(cur); cur = ""; } else cur += ch;
  }
  items.push(cur);
  const names = [], params = [];
  let any = false;
  for (const raw of items.map(t => t.trim()).filter(Boolean)) {
    const m = raw.match(/^([A-Za-z_]\w*)\s*(?:\((.*)\))?$/);
    if (!m) throw new Error(`per layer: cannot read ${JSON.stringify(raw)}; write name or name(param=value, …)`);
    const p = {};
    for (const kv of (m[2] || "").split(",").map(t => t.trim()).filter(Boolean)) {
      const [k, ...rest] = kv.split("="), v = rest.join("=").trim().replace(/^["']|["']$/g, "");
      if (!rest.length || !k.trim()) throw new Error(`per layer: cannot read ${JSON.stringify(kv)} in ${JSON.stringify(raw)}; write param=value`);
      p[k.trim()] = v === "true" ? true : v === "false" ? false : v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
    }
    if (Object.keys(p).length) any = true;
    names.push(m[1]); params.push(p);
  }
  if (!names.length) return { layer_activations: null, layer_activation_params: null };
  return { layer_activations: names, layer_activation_params: any ? params : null };
}

function readURL() {
  const q = new URLSearchParams(location.search);
  const cfg = { ...S.catalog.defaults };
  const lessonId = q.get("lesson");
  S.lesson = S.lessons.find(l => l.id === lessonId) || null;
  if (S.lesson && !q.has("depth")) Object.assign(cfg, S.lesson.config);
  for (const key of S.catalog.fields) { if (q.has(key)) { const v = fromText(key, q.get(key)); if (v !== undefined) cfg[key] = v; } }
  if (cfg.noise === null || cfg.noise === undefined) cfg.noise = (S.catalog.datasets.find(d => d.name === cfg.dataset) || {}).noise ?? null;
  S.cfg = cfg;
  S.b = {};
  for (const key of B_FIELDS) { if (q.has("b." + key)) { const v = fromText(key, q.get("b." + key)); if (v !== undefined) S.b[key] = v; } }
  if (S.lesson && S.lesson.compare && !Object.keys(S.b).length) Object.assign(S.b, S.lesson.compare);
  S.compare = q.get("compare") === "1" || (S.lesson && !!S.lesson.compare && !q.has("compare"));
  S.autoplay = q.get("autoplay") === "1";
  S.tab = q.get("tab") || (S.compare ? "compare" : "train");
  const hide = (q.get("hide") || (S.lesson ? S.lesson.hide.join(",") : "")).split(",").filter(Boolean);
  for (const g of ["network", "data", "training", "controls"]) document.body.classList.toggle("hide-" + g, hide.includes(g));
}

function writeURL() {
  const q = new URLSearchParams();
  if (S.lesson) q.set("lesson", S.lesson.id);
  for (const key of S.catalog.fields) { const t = toText(key, S.cfg[key]); if (t !== "" || key === "noise") q.set(key, t); }
  if (S.compare) { q.set("compare", "1"); for (const [k, v] of Object.entries(S.b)) q.set("b." + k, toText(k, v)); }
  if (S.tab !== "train" && S.tab !== "compare") q.set("tab", S.tab);
  const hidden = ["network", "data", "training", "controls"].filter(g => document.body.classList.contains("hide-" + g));
  if (hidden.length) q.set("hide", hidden.join(","));
  if (S.autoplay) q.set("autoplay", "1");
  history.replaceState(null, "", "?" + q.toString());
}

function fillSelect(sel, names, value) {
  sel.innerHTML = names.map(n => `<option value="${n}">${n}</option>`).join("");
  if (value !== undefined) sel.value = value;
}

function buildControls() {
  const c = S.catalog;
  fillSelect($("[data-field=dataset]"), c.datasets.map(d => d.name));
  fillSelect($("[data-field=activation]"), c.activations.map(a => a.name));
  fillSelect($("[data-field=init]"), c.inits);
  fillSelect($("[data-field=optimizer]"), c.optimizers);
  fillSelect($("[data-bfield=activation]"), ["(same)", ...c.activations.map(a => a.name)]);
  fillSelect($("[data-bfield=init]"), ["(same)", ...c.inits]);
  fillSelect($("[data-bfield=optimizer]"), ["(same)", ...c.optimizers]);
  $("[data-field=depth]").max = c.limits.max_depth; $("[data-field=width]").max = c.limits.max_width;
  $("[data-field=steps]").max = c.limits.max_steps; $("[data-field=batch_size]").max = c.limits.max_batch_size;
  for (const el of $$("[data-field]")) el.addEventListener("change", () => onControl(el));
  for (const el of $$("[data-bfield]")) el.addEventListener("change", () => onBControl(el));
}

function paramInputs(root, actName, values, onChange) {
  const info = actInfo(actName);
  root.innerHTML = "";
  for (const p of info ? info.params : []) {
    const label = document.createElement("label");
    label.title = p.doc;
    const v = values && p.name in values ? values[p.name] : p.default;
    if (p.choices) {
      label.innerHTML = `${p.name} <select data-param="${p.name}">${p.choices.map(ch => `<option>${ch}</option>`).join("")}</select>`;
      label.querySelector("select").value = v;
    } else {
      label.innerHTML = `${p.name} <input data-param="${p.name}" type="number" step="0.05" value="${v}">`;
    }
    label.querySelector("[data-param]").addEventListener("change", onChange);
    root.appendChild(label);
  }
}
function readParams(root, actName) {
  const info = actInfo(actName), out = {};
  for (const el of $$("[data-param]", root)) {
    const p = info.params.find(q => q.name === el.dataset.param);
    const v = p.choices ? el.value : Number(el.value);
    if (v !== p.default) out[p.name] = v;
  }
  return out;
}

function showControls() {
  for (const el of $$("[data-field]")) {
    const key = el.dataset.field, v = S.cfg[key];
    if (el.type === "checkbox") el.checked = !!v; else el.value = key === "layer_activations" ? perLayerText(S.cfg) : toText(key, v);
  }
  paramInputs($("#act-params"), S.cfg.activation, S.cfg.activation_params, () => {
    S.cfg.activation_params = readParams($("#act-params"), S.cfg.activation); changed();
  });
  for (const el of $$("[data-bfield]")) { const k = el.dataset.bfield; el.value = k in S.b ? S.b[k] : (el.tagName === "SELECT" ? "(same)" : ""); }
  $("#compare-controls").hidden = !S.compare;
}

function onControl(el) {
  const key = el.dataset.field;
  if (key === "layer_activations") {
    try { Object.assign(S.cfg, parsePerLayer(el.value)); } catch (e) { showError(e); return; }
    changed(); return;
  }
  const v = el.type === "checkbox" ? el.checked : fromText(key, el.value);
  if (v === undefined) return;
  S.cfg[key] = v;
  if (key === "activation") {
    S.cfg.activation_params = {};
    if (!S.cfg.layer_activations) S.cfg.layer_activation_params = null;  // they were the old activation's
    showControls();
  }
  if (key === "dataset") { const d = S.catalog.datasets.find(x => x.name === v); S.cfg.noise = d ? d.noise : null; showControls(); }
  if (key === "lr") { for (const p of S.panels) if (p.run && p.active) api("PATCH", `/api/runs/${p.run}`, { lr: p.cfg().lr }).catch(showError); writeURL(); return; }
  changed();
}
function onBControl(el) {
  const k = el.dataset.bfield;
  if (el.value === "(same)" || el.value === "") delete S.b[k]; else S.b[k] = fromText(k, el.value);
  changed();
}
function changed() { writeURL(); for (const p of S.panels) p.stale = true; }

// ---------------------------------------------------------------- drawing helpers
function ctx2d(canvas) { const c = canvas.getContext("2d"); c.clearRect(0, 0, canvas.width, canvas.height); return c; }
function bump(canvas) { canvas.dataset.updates = String(Number(canvas.dataset.updates || 0) + 1); }
function num(v) { return typeof v === "number" && Number.isFinite(v) ? v : null; }

function lineChart(canvas, series, opts = {}) {
  const c = ctx2d(canvas), W = canvas.width, H = canvas.height, pad = 28;
  const xs = series.flatMap(s => s.points.map(p => p[0]));
  let ys = series.flatMap(s => s.points.map(p => p[1])).filter(v => v !== null);
  if (opts.log) ys = ys.filter(v => v > 0).map(Math.log10);
  if (!xs.length || !ys.length) { bump(canvas); return; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = opts.ymin ?? Math.min(...ys), y1 = opts.ymax ?? Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const X = x => pad + (x - x0) / (x1 - x0) * (W - pad - 6), Y = y => H - 16 - (y - y0) / (y1 - y0) * (H - 24);
  c.strokeStyle = "#ccc"; c.beginPath(); c.moveTo(pad, 4); c.lineTo(pad, H - 16); c.lineTo(W - 4, H - 16); c.stroke();
  c.fillStyle = "#6b7280"; c.font = "10px system-ui";
  const fmt = v => opts.log ? Math.pow(10, v).toExponential(1) : (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));
  c.fillText(fmt(y1), 2, 10); c.fillText(fmt(y0), 2, H - 18); c.fillText(String(x1), W - 30, H - 4); c.fillText(opts.xlabel || "", pad + 4, H - 4);
  for (const s of series) {
    c.strokeStyle = s.color; c.fillStyle = s.color; c.setLineDash(s.dash ? [5, 4] : []); c.lineWidth = 1.6;
    c.beginPath(); let started = false;
    for (const [x, yRaw] of s.points) {
      let y = yRaw; if (y === null || (opts.log && !(y > 0))) { started = false; continue; }
      if (opts.log) y = Math.log10(y);
      if (!started) { c.moveTo(X(x), Y(y)); started = true; } else c.lineTo(X(x), Y(y));
      if (s.dots) c.fillRect(X(x) - 2, Y(y) - 2, 4, 4);
    }
    c.stroke(); c.setLineDash([]);
  }
  bump(canvas);
}

function drawSurface(canvas, snap) {
  const c = ctx2d(canvas), W = canvas.width, H = canvas.height, s = snap.surface;
  if (!s) { c.fillStyle = "#6b7280"; c.fillText("no surface for this data set (not 2-D)", 8, 20); bump(canvas); return; }
  const n = s.n, cw = W / n, ch = H / n;
  for (let i = 0; i < n * n; i++) {
    const gx = i % n, gy = Math.floor(i / n);
    c.globalAlpha = 0.15 + 0.5 * Math.max(0, (s.conf[i] - 0.5) * 2);
    c.fillStyle = PALETTE[s.cls[i] % PALETTE.length];
    c.fillRect(gx * cw, H - (gy + 1) * ch, cw + 0.5, ch + 0.5);
  }
  c.globalAlpha = 1;
  const X = x => (x - s.lo[0]) / (s.hi[0] - s.lo[0]) * W, Y = y => H - (y - s.lo[1]) / (s.hi[1] - s.lo[1]) * H;
  for (const [pts, filled] of [[snap.points || [], true], [snap.test_points || [], false]]) {
    for (const [x, y, k] of pts) {
      c.beginPath(); c.arc(X(x), Y(y), 2.6, 0, 6.3);
      c.strokeStyle = "#fff"; c.fillStyle = PALETTE[k % PALETTE.length];
      if (filled) { c.fill(); c.lineWidth = 0.6; c.stroke(); } else { c.strokeStyle = PALETTE[k % PALETTE.length]; c.lineWidth = 1.4; c.stroke(); }
    }
  }
  bump(canvas);
}

function drawGrad(canvas, note, snap) {
  const layers = snap.layers || [];
  const measured = layers.map((l, i) => [i + 1, num(l.grad_norm)]);
  const series = [{ points: measured, color: "#0f766e", dots: true }];
  const t = snap.theory || {};
  if (t.ratio && layers.length === t.ratio.length) {
    const anchor = num(layers[layers.length - 1].grad_norm);
    if (anchor) series.push({ points: t.ratio.map((r, i) => [i + 1, r * anchor]), color: "#9333ea", dash: true });
  }
  lineChart(canvas, series, { log: true, xlabel: "layer (input → output)" });
  note.textContent = t.reason || "";
}

function drawValves(canvas, snap) {
  // E[f'] raw (sigmoid's valve is never more than 1/4 open), dead and saturated fractions
  const c = ctx2d(canvas), W = canvas.width, H = canvas.height, layers = snap.layers || [];
  const n = Math.max(layers.length, 1), bw = (W - 30) / n, top = 8, h = H - 24;
  const top1 = Math.max(1, ...layers.map(l => (actInfo(l.activation) || {}).derivative_bound || 1));
  c.fillStyle = "#6b7280"; c.font = "10px system-ui"; c.fillText(top1.toPrecision(3), 2, top + 8); c.fillText("0", 2, top + h);
  layers.forEach((l, i) => {
    const vals = [(num(l.mean_derivative) ?? 0) / top1, num(l.dead_fraction) ?? 0, num(l.saturated_fraction) ?? 0];
    const colors = ["#3fae6a", "#111", "#e07a1f"], w = Math.max(1, bw / 3 - 1);
    vals.forEach((v, j) => { c.fillStyle = colors[j]; const hh = Math.max(0, Math.min(1, v)) * h; c.fillRect(24 + i * bw + j * (w + 0.5), top + h - hh, w, hh); });
  });
  bump(canvas);
}

function drawUnits(canvas, snap) {
  const units = snap.units || [], c = ctx2d(canvas);
  if (!units.length) { bump(canvas); return; }
  const rows = units.length, cols = Math.max(...units.map(u => u.length));
  const cw = Math.max(1, Math.floor(canvas.width / cols)), rh = Math.max(2, Math.floor(canvas.height / rows));
  const img = c.createImageData(cols * cw, rows * rh), d = img.data;
  const col = { a: [63, 174, 106], d: [17, 17, 17], s: [224, 122, 31] };
  for (let r = 0; r < rows; r++) for (let u = 0; u < units[r].length; u++) {
    const rgb = col[units[r][u]] || col.a;
    for (let dy = 0; dy < rh - (rh > 3 ? 1 : 0); dy++) for (let dx = 0; dx < cw - (cw > 3 ? 1 : 0); dx++) {
      const o = ((r * rh + dy) * cols * cw + u * cw + dx) * 4;
      d[o] = rgb[0]; d[o + 1] = rgb[1]; d[o + 2] = rgb[2]; d[o + 3] = 255;
    }
  }
  c.putImageData(img, 0, 0);
  bump(canvas);
}

async function curveFor(name, params, lim) {
  const key = JSON.stringify([name, params, lim]);
  if (!S.curves.has(key)) S.curves.set(key, api("POST", "/api/curve", { name, params, lo: -lim, hi: lim }));
  return S.curves.get(key);
}

async function drawHist(canvas, panel, snap) {
  const sel = panel.el.querySelector(".hist-layer"), layers = snap.layers || [], hists = snap.hist || [];
  if (sel.options.length !== hists.length) {
    const keep = sel.value;
    sel.innerHTML = hists.map((_, i) => `<option value="${i}">${i + 1}</option>`).join("");
    sel.value = keep && Number(keep) < hists.length ? keep : "0";
  }
  const i = Number(sel.value || 0), h = hists[i];
  if (!h) { bump(canvas); return; }
  const cfg = panel.cfg(), names = cfg.layer_activations || Array(cfg.depth).fill(cfg.activation);
  const name = (layers[i] && layers[i].activation) || names[i];
  const lim = Math.pow(2, Math.ceil(Math.log2(Math.max(h.hi, 0.25))));
  let cv = null;
  const ps = cfg.layer_activation_params ? cfg.layer_activation_params[i] : (name === cfg.activation ? cfg.activation_params : {});
  try { cv = await curveFor(name, ps || {}, lim); } catch (e) { cv = null; }
  const c = ctx2d(canvas), W = canvas.width, H = canvas.height;
  const X = x => (x + lim) / (2 * lim) * W, max = Math.max(...h.counts, 1), bw = (h.hi - h.lo) / h.counts.length;
  c.fillStyle = "#cbd5e1";
  h.counts.forEach((k, j) => { const x = h.lo + j * bw; c.fillRect(X(x), H - 14 - k / max * (H - 24), Math.max(1, X(x + bw) - X(x) - 1), k / max * (H - 24)); });
  if (cv) {
    const fs = cv.f.filter(v => v !== null), lo = Math.min(...fs, 0), hi = Math.max(...fs, 1e-9);
    const dmax = Math.max(...cv.df.filter(v => v !== null).map(Math.abs), 1e-9);
    for (const [arr, color, dash, scaleLo, scaleHi] of [[cv.f, "#1d232b", false, lo, hi], [cv.df, "#dc2626", true, Math.min(0, ...cv.df.filter(v => v !== null)), dmax]]) {
      c.strokeStyle = color; c.setLineDash(dash ? [4, 3] : []); c.beginPath();
      cv.x.forEach((x, j) => { const v = arr[j]; if (v === null) return; const y = H - 14 - (v - scaleLo) / (scaleHi - scaleLo || 1) * (H - 24); j ? c.lineTo(X(x), y) : c.moveTo(X(x), y); });
      c.stroke();
    }
    c.setLineDash([]);
  }
  c.fillStyle = "#6b7280"; c.font = "10px system-ui"; c.fillText(`z ∈ [−${lim}, ${lim}]  ${name}`, 4, H - 2);
  bump(canvas);
}

// ---------------------------------------------------------------- remedies
// The catalog's "remedies" (gradsight.web.remedies, from the monitor's diagnostics) says, per
// finding kind, which settings act on it and when; here only the generic rules: a remedy is
// offered when each of its "when" conditions holds (a config field, or "activation.<property>"
// of the catalog entry) and it would change something; it sets "set", multiplies by "scale"
// (3 significant digits) or runs its "action".
function offered(r, cfg) {
  const info = actInfo(cfg.activation) || {};
  const holds = Object.entries(r.when).every(([k, v]) => (k.startsWith("activation.") ? info[k.slice(11)] : cfg[k]) === v);
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  return holds && (!!r.action || Object.keys(r.scale).length > 0 || Object.entries(r.set).some(([k, v]) => !same(cfg[k], v)));
}
function remedies(f, cfg) {
  return (S.catalog.remedies[f.kind] || []).filter(r => offered(r, cfg)).map(r => {
    if (r.action) return [r.label, r.action];
    const change = { ...r.set };
    for (const [k, factor] of Object.entries(r.scale)) change[k] = +(cfg[k] * factor).toPrecision(3);
    return [r.label, change];
  });
}

// ---------------------------------------------------------------- a panel: one run and its views
class Panel {
  constructor(title, which) {
    this.which = which; this.run = null; this.es = null; this.active = false; this.stale = true; this.snap = null;
    this.el = $("#panel-template").content.firstElementChild.cloneNode(true);
    this.el.dataset.panel = which;
    this.el.querySelector(".panel-title").textContent = title;
    this.el.querySelector(".hist-layer").addEventListener("change", () => this.snap && drawHist(this.el.querySelector(".v-hist"), this, this.snap));
    $("#panels").appendChild(this.el);
  }
  cfg() { return this.which === "b" ? { ...S.cfg, ...S.b, ...(S.b.activation ? { activation_params: {}, layer_activations: null, layer_activation_params: null } : {}) } : { ...S.cfg }; }
  async create(paused) {
    await this.drop();
    const body = { ...this.cfg(), paused };
    const out = await api("POST", "/api/runs", body);
    this.run = out.id; this.active = true; this.stale = false;
    this.listen();
  }
  listen() {
    this.es = new EventSource(`/api/runs/${this.run}/stream`);
    this.es.onmessage = ev => this.update(JSON.parse(ev.data));
    this.es.onerror = () => { if (this.es && !this.active) { this.es.close(); this.es = null; } };
  }
  async drop() {
    if (this.es) { this.es.close(); this.es = null; }
    if (this.run) { const id = this.run; this.run = null; this.active = false; await api("DELETE", `/api/runs/${id}`).catch(() => null); }
  }
  async control(action) { if (this.run) await api("POST", `/api/runs/${this.run}/${action}`); }
  update(snap) {
    // data points and theory come in a stream's first snapshot only
    if (this.snap && this.snap.id === snap.id) for (const k of ["points", "test_points", "theory"]) if (!(k in snap)) snap[k] = this.snap[k];
    this.snap = snap;
    this.active = snap.status === "running" || snap.status === "paused";
    if (!this.active && this.es) { this.es.close(); this.es = null; }
    const q = cls => this.el.querySelector(cls);
    q(".panel-status").textContent = `${snap.status} · step ${snap.step}/${snap.steps} · lr ${snap.lr}` + (snap.reason ? ` · ${snap.reason}` : "");
    this.el.dataset.status = snap.status;
    const m = snap.metrics || [];
    lineChart(q(".v-loss"), [{ points: m.map(p => [p.step, num(p.train_loss)]), color: "#2563eb" },
                            { points: m.map(p => [p.step, num(p.test_loss)]), color: "#e07a1f", dash: true }], { ymin: 0, xlabel: "step" });
    lineChart(q(".v-acc"), [{ points: m.map(p => [p.step, num(p.train_acc)]), color: "#2563eb" },
                           { points: m.map(p => [p.step, num(p.test_acc)]), color: "#e07a1f", dash: true }], { ymin: 0, ymax: 1, xlabel: "step" });
    drawSurface(q(".v-surface"), snap);
    drawGrad(q(".v-grad"), q(".theory-note"), snap);
    drawValves(q(".v-valve"), snap);
    drawUnits(q(".v-units"), snap);
    drawHist(q(".v-hist"), this, snap);
    this.findings(snap);
    const nan = q(".nan");
    nan.hidden = snap.status !== "failed";
    nan.textContent = snap.status === "failed" ? `training stopped: ${snap.reason}` : "";
    if (this.which === "a") setStatus();
  }
  findings(snap) {
    // The list is rebuilt only when its findings or their remedy buttons change; a message that
    // changes while training (its sample counts) is updated in place, so an apply button is
    // never replaced between the press and the release of a click.
    const ul = this.el.querySelector(".findings"), cfg = this.cfg();
    const fs = snap.findings || [];
    const choices = fs.map(f => remedies(f, cfg));
    const key = JSON.stringify(fs.map((f, i) => [f.kind, f.severity, choices[i]]));
    if (key === ul.dataset.key) {
      ul.querySelectorAll("li[data-kind]").forEach((li, i) => {
        li.querySelector(".msg").textContent = fs[i].message;
        li.querySelector(".remedy").textContent = "remedy: " + fs[i].remedy;
      });
      return;
    }
    ul.dataset.key = key;
    ul.innerHTML = fs.length ? "" : '<li class="none">none so far</li>';
    fs.forEach((f, i) => {
      const li = document.createElement("li");
      li.className = f.severity; li.dataset.kind = f.kind;
      li.innerHTML = `<span class="kind"></span> <span class="msg"></span><div class="remedy"></div>`;
      li.querySelector(".kind").textContent = `${f.kind} (${f.severity})`;
      li.querySelector(".msg").textContent = f.message;
      li.querySelector(".remedy").textContent = "remedy: " + f.remedy;
      for (const [label, change] of choices[i]) {
        const b = document.createElement("button");
        b.textContent = "apply: " + label; b.className = "apply";
        b.addEventListener("click", () => applyRemedy(this, change));
        li.appendChild(b);
      }
      ul.appendChild(li);
    });
  }
}

async function applyRemedy(panel, change) {
  if (typeof change === "string") { await panel.control(change).catch(showError); return; }
  if (panel.which === "b") Object.assign(S.b, change); else Object.assign(S.cfg, change);
  showControls(); changed();
  await play();
}

function setStatus() {
  const p = S.panels[0];
  $("#status").textContent = p && p.snap ? `${p.snap.status} · step ${p.snap.step}` : "idle";
}
function showError(e) { $("#errors").textContent = e && e.data && e.data.errors ? Object.entries(e.data.errors).map(([k, v]) => `${k}: ${v}`).join("\n") : String(e.message || e); }

function layoutPanels() {
  for (const p of S.panels) { p.drop(); p.el.remove(); }
  S.panels = [new Panel(S.compare ? "A" : "run", "a")];
  if (S.compare) S.panels.push(new Panel("B", "b"));
}

// ---------------------------------------------------------------- buttons
async function play() {
  $("#errors").textContent = "";
  try {
    for (const p of S.panels) {
      if (!p.run || p.stale || !p.active) await p.create(false);
      else await p.control("resume");
    }
  } catch (e) { showError(e); }
}
async function pause() { for (const p of S.panels) await p.control("pause").catch(showError); }
async function step() {
  try { for (const p of S.panels) { if (!p.run || p.stale || !p.active) await p.create(true); await p.control("step"); } }
  catch (e) { showError(e); }
}
async function reset() { for (const p of S.panels) await p.drop(); layoutPanels(); setStatus(); }

function setTab(tab) {
  S.tab = tab;
  for (const b of $$("#tabs button")) b.classList.toggle("on", b.dataset.tab === tab);
  $("#view-train").hidden = !(tab === "train" || tab === "compare");
  $("#view-derivatives").hidden = tab !== "derivatives";
  $("#view-lessons").hidden = tab !== "lessons";
  $("#controls").hidden = tab === "derivatives" || tab === "lessons";
  const wantCompare = tab === "compare";
  if ((tab === "train" || tab === "compare") && wantCompare !== S.compare) { S.compare = wantCompare; layoutPanels(); showControls(); }
  if (tab === "derivatives") explorer();
  writeURL();
}

// ---------------------------------------------------------------- derivative explorer
async function explorer() {
  const sel = $("#ex-act");
  if (!sel.options.length) {
    fillSelect(sel, S.catalog.activations.map(a => a.name), "relu");
    sel.addEventListener("change", () => { paramInputs($("#ex-params"), sel.value, {}, drawExplorer); drawExplorer(); });
    paramInputs($("#ex-params"), sel.value, {}, drawExplorer);
    $("#ex-run").addEventListener("click", runScratch);
    runScratch();
  }
  drawExplorer();
}
async function drawExplorer() {
  const name = $("#ex-act").value, params = readParams($("#ex-params"), name);
  let cv;
  try { cv = await api("POST", "/api/curve", { name, params, lo: -4, hi: 4 }); } catch (e) { showError(e); return; }
  lineChart($("#ex-plot"), [{ points: cv.x.map((x, i) => [x, cv.f[i]]), color: "#1d232b" },
                            { points: cv.x.map((x, i) => [x, cv.df[i]]), color: "#dc2626", dash: true }], { xlabel: "x: f — f′ - -" });
  $("#ex-kink").textContent = `kink convention: f′(0) = ${cv.derivative_at_zero} (as PyTorch; set derivative_at_zero to change it)`;
  $("#ex-math").textContent = cv.math.trim();
}
async function runScratch() {
  const parse = s => s.split(",").map(t => Number(t.trim())).filter(v => Number.isFinite(v));
  try {
    const r = await api("POST", "/api/scratch", { x: parse($("#ex-x").value), dout: parse($("#ex-dout").value) });
    $("#ex-table").innerHTML = "<tr><th>x</th><th>dout</th><th>relu_backward</th><th>autograd</th></tr>" +
      r.x.map((x, i) => `<tr><td>${x}</td><td>${r.dout[i]}</td><td>${r.dx_scratch[i]}</td><td>${r.dx_autograd[i]}</td></tr>`).join("") +
      `<tr><td colspan="4">${r.agree ? "✓ the same, to the bit" : "✗ they differ"}</td></tr>`;
  } catch (e) { $("#ex-table").innerHTML = `<tr><td class="errors">${e.message}</td></tr>`; }
}

// ---------------------------------------------------------------- lessons
function lessonURL(l) {
  const q = new URLSearchParams({ lesson: l.id });
  for (const [k, v] of Object.entries(l.config)) q.set(k, toText(k, v));
  if (l.compare) { q.set("compare", "1"); for (const [k, v] of Object.entries(l.compare)) if (B_FIELDS.includes(k)) q.set("b." + k, toText(k, v)); }
  if (l.id === "relu_derivative") q.set("tab", "derivatives");
  q.set("autoplay", "1");
  return "?" + q.toString();
}
function verdictText(v) {
  return v.verdict ? `lab verdict: ${v.verdict} — ${v.claim || ""} (${v.command})` : `lab verdict: ${v.note}`;
}
function buildLessons() {
  const root = $("#lessons");
  root.innerHTML = "";
  for (const l of S.lessons) {
    const div = document.createElement("div");
    div.className = "lesson"; div.dataset.lesson = l.id;
    div.innerHTML = `<h3><a></a></h3><p class="text"></p><p class="verdict"></p>`;
    const a = div.querySelector("a"); a.href = lessonURL(l); a.textContent = l.title;
    div.querySelector(".text").textContent = l.text;
    div.querySelector(".verdict").textContent = verdictText(l.verdict);
    root.appendChild(div);
  }
  const banner = $("#lesson-banner");
  banner.hidden = !S.lesson;
  if (S.lesson) banner.innerHTML = `<b></b> <span class="text"></span> <span class="verdict"></span>`,
    banner.querySelector("b").textContent = S.lesson.title + ".", banner.querySelector(".text").textContent = S.lesson.text,
    banner.querySelector(".verdict").textContent = verdictText(S.lesson.verdict);
}

// ---------------------------------------------------------------- start
async function main() {
  [S.catalog, S.lessons] = await Promise.all([api("GET", "/api/catalog"), api("GET", "/api/lessons")]);
  buildControls();
  readURL();
  showControls();
  buildLessons();
  layoutPanels();
  for (const b of $$("#tabs button")) b.addEventListener("click", () => setTab(b.dataset.tab));
  $("#play").addEventListener("click", play);
  $("#pause").addEventListener("click", pause);
  $("#step").addEventListener("click", step);
  $("#reset").addEventListener("click", reset);
  // leaving the page frees its runs (the server also frees a run whose stream closed)
  window.addEventListener("beforeunload", () => { for (const p of S.panels) if (p.run) fetch(`/api/runs/${p.run}`, { method: "DELETE", keepalive: true }); });
  setTab(S.tab);
  writeURL();
  document.body.dataset.ready = "1";
  if (S.autoplay && S.tab !== "derivatives") play();
}
main().catch(e => { showError(e); });
