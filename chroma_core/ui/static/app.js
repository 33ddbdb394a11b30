// The page: sets, a set's map (regl-scatterplot over the binary /v1/sets/{id}/map body), hover, lasso, export.
// Everything it shows comes from the keyed /v1 routes; the key stays in this tab's sessionStorage.
"use strict";

const COLORS = ["#9ca3af", "#dc2626", "#2563eb", "#f59e0b"];
const NOVELTY = ["#e5e7eb", "#fde68a", "#f59e0b", "#dc2626", "#7f1d1d"];
// Cluster colours (Tableau 20 without its greys): training-only grey stays the "no cluster" colour.
const CLUSTER_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
  "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5"];
const NO_CLUSTER = 255;
// Time-window lengths the map can colour by: the shortest that cuts the set's inputs into at most 24 windows.
const WINDOWS = [[3600, "hour"], [6 * 3600, "6 hours"], [86400, "day"], [7 * 86400, "week"], [30 * 86400, "30 days"]];
const MAX_WINDOWS = 24;
const NAMES = { training: "training", training_recommended: "recommended", not_useful: "not useful", production: "production, other" };
const $ = (id) => document.getElementById(id);
const ui = (window.chromaUI = { ready: false, points: 0, selected: [], hovered: null, setId: null, errors: [] });
let plot = null;
let map = null;
let view = null; // the drawn x, y and novelty (0..1) arrays, kept for recolouring

function status(text) { $("status").textContent = text; }
function escapeHtml(s) { return String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`); }

async function api(path, options = {}) {
  const key = $("key").value.trim();
  const headers = Object.assign({}, options.headers || {});
  if (key) headers["Authorization"] = `Bearer ${key}`;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let message = `${response.status}`;
    try { const body = await response.json(); message = body.error?.message || body.message || JSON.stringify(body); } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function parseMap(buffer) {
  const view = new DataView(buffer);
  const length = view.getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const n = head.points, at = 4 + length;
  const xy = new Float32Array(buffer, at, 2 * n);
  const novelty = new Float32Array(buffer, at + 8 * n, n);
  const category = new Uint8Array(buffer, at + 12 * n, n);
  // Layout 2 (docs/ui.md): each input's time after head.time_origin, and its cluster.
  let time = null, cluster = null;
  if ((head.layout || 1) >= 2) {
    const more = at + 13 * n + ((4 - (n % 4)) % 4);
    time = new Float32Array(buffer, more, n);
    cluster = new Uint8Array(buffer, more + 4 * n, n);
  }
  return { head, xy, novelty, category, time, cluster };
}

async function loadSets() {
  sessionStorage.setItem("chroma-key", $("key").value);
  status("loading sets…");
  try {
    const sets = (await (await api("/v1/sets")).json()).sets;
    const body = $("sets").querySelector("tbody");
    body.innerHTML = "";
    for (const s of sets) {
      const row = document.createElement("tr");
      row.dataset.set = s.id;
      const name = s.embedding_set.name || s.embedding_set.model || s.id.slice(0, 12);
      row.innerHTML = `<td title="${escapeHtml(s.id)}">${escapeHtml(name)}</td><td>${s.training}</td><td>${s.production}</td><td class="rec">…</td>`;
      row.onclick = () => openSet(s.id);
      body.appendChild(row);
    }
    status(sets.length ? `${sets.length} sets` : "no sets yet: log some with chroma.log or upload one");
    if (sets.length) await openSet(new URLSearchParams(location.search).get("set") || sets[0].id);
  } catch (e) { ui.errors.push(String(e)); status(`cannot load sets: ${e.message}`); }
}

function lerpColor(a, b, t) {
  const pa = [1, 3, 5].map((k) => parseInt(a.slice(k, k + 2), 16)), pb = [1, 3, 5].map((k) => parseInt(b.slice(k, k + 2), 16));
  return "#" + pa.map((v, k) => Math.round(v + (pb[k] - v) * t).toString(16).padStart(2, "0")).join("");
}

// Each colouring: the codes (valueA) and colours the plot draws, and the legend beside it.
function windowColoring() {
  const n = map.head.points, t0 = map.head.training, codes = new Uint8Array(n);
  const span = map.head.production_times ? map.head.production_times[1] - map.head.production_times[0] : 0;
  const [length, word] = WINDOWS.find(([s]) => span / s < MAX_WINDOWS) || WINDOWS[WINDOWS.length - 1];
  const count = Math.min(MAX_WINDOWS, Math.floor(span / length) + 1);
  const sizes = new Array(count).fill(0);
  for (let i = t0; i < n; i++) {
    const t = map.time ? map.time[i] : NaN;
    if (Number.isNaN(t)) continue;
    const w = Math.min(count - 1, Math.floor(t / length));
    codes[i] = 1 + w; sizes[w]++;
  }
  const colors = [COLORS[0]].concat(sizes.map((_, w) => lerpColor("#2563eb", "#dc2626", count > 1 ? w / (count - 1) : 1)));
  const origin = map.head.time_origin;
  const day = (w) => new Date((origin + w * length) * 1000).toISOString().slice(0, length < 86400 ? 16 : 10).replace("T", " ");
  const shown = sizes.map((c, w) => [c, w]).filter(([c]) => c > 0);
  const items = [`<span class="swatch" style="background:${colors[0]}"></span>training (${t0})`].concat(
    shown.slice(0, 6).map(([c, w]) => `<span class="swatch" style="background:${colors[w + 1]}"></span>${day(w)} (${c})`));
  if (shown.length > 6) items.push(`… ${shown.length - 6} more windows`);
  return { codes, colors, legend: `by ${word}: ` + items.join(""), windows: count };
}

function clusterColoring() {
  const n = map.head.points, k = map.head.clusters || 0, codes = new Uint8Array(n);
  const training = new Array(k).fill(0), production = new Array(k).fill(0);
  for (let i = 0; i < n; i++) {
    const c = map.cluster ? map.cluster[i] : NO_CLUSTER;
    if (c === NO_CLUSTER || c >= k) { codes[i] = k; continue; }
    codes[i] = c;
    if (i < map.head.training) training[c]++; else production[c]++;
  }
  const colors = Array.from({ length: k }, (_, c) => CLUSTER_COLORS[c % CLUSTER_COLORS.length]).concat([COLORS[0]]);
  if (!k) return { codes, colors, legend: "no clusters: the set is too small", clusters: 0 };
  // The legend ranks clusters by drift ratio (share of production over share of training, smoothed as drift does).
  const pt = training.reduce((a, b) => a + b, 0), pp = production.reduce((a, b) => a + b, 0);
  const ratio = training.map((t, c) => ((production[c] + 0.5) / (pp + 0.5 * k)) / ((t + 0.5) / (pt + 0.5 * k)));
  const order = ratio.map((r, c) => [r, c]).sort((a, b) => b[0] - a[0]).slice(0, 6);
  const items = order.map(([r, c]) => `<span class="swatch" style="background:${colors[c]}"></span>#${c} ${training[c]}/${production[c]}${pp ? ` ×${r.toFixed(1)}` : ""}`);
  return { codes, colors, legend: `${k} clusters (training/production, drift ratio): ` + items.join(""), clusters: k };
}

function categoryColoring() {
  const legend = map.head.categories.map((c, i) =>
    `<span class="swatch" style="background:${COLORS[i]}"></span>${NAMES[c]} (${map.head.counts[i]})`).join("");
  return { codes: map.category, colors: COLORS, legend };
}

async function colorBy(mode) {
  if (!plot || !map) return;
  ui.colored = null;
  const novelty = mode === "novelty";
  const c = mode === "window" ? windowColoring() : mode === "cluster" ? clusterColoring() : categoryColoring();
  plot.set(novelty ? { colorBy: "valueB", pointColor: NOVELTY } : { colorBy: "valueA", pointColor: c.colors });
  // The codes change with the colouring; the positions and the selection stay.
  await plot.draw({ x: view.x, y: view.y, valueA: Array.from(c.codes), valueB: view.b },
                  { zDataType: "categorical", wDataType: "continuous", preventFilterReset: true });
  if (ui.selected.length) plot.select(ui.selected, { preventEvent: true });
  $("legend").innerHTML = novelty
    ? `novelty: <span class="swatch" style="background:${NOVELTY[0]}"></span>low <span class="swatch" style="background:${NOVELTY[4]}"></span>high (training rows: none)`
    : c.legend;
  ui.windows = c.windows; ui.clusters = c.clusters;
  ui.colored = mode;
}

// A large set's map (or any UMAP map) is computed in the background: the route answers 202 with its progress
// until it is ready, and the page shows that progress instead of hanging on one request.
async function loadMap(setId, method) {
  const asked = (ui.asked = `${setId}/${method}`);
  ui.progress = null; ui.progressSeen = [];
  for (;;) {
    const response = await api(`/v1/sets/${setId}/map?method=${method}`);
    if (ui.asked !== asked) return null;
    if (response.status !== 202) return response.arrayBuffer();
    const p = (ui.progress = await response.json());
    ui.progressSeen.push(p);
    const share = p.total ? Math.round((100 * p.done) / p.total) : 0;
    status(p.done ? `projecting (${p.method}): ${share}%, ${p.done.toLocaleString()} of ${p.total.toLocaleString()} points`
                  : `projecting (${p.method}): fitting on a sample of the ${p.total.toLocaleString()} points…`);
    $("progress").hidden = false; $("progress").value = share;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function openSet(setId) {
  ui.ready = false; ui.setId = setId; ui.selected = [];
  for (const row of $("sets").querySelectorAll("tbody tr")) row.classList.toggle("active", row.dataset.set === setId);
  status("projecting…");
  const started = performance.now();
  const body = await loadMap(setId, $("method").value);
  if (body == null) return;  // another set or projection was asked for meanwhile
  map = parseMap(body);
  $("progress").hidden = true;
  const n = map.head.points;
  const x = new Float32Array(n), y = new Float32Array(n), b = new Float32Array(n);
  let top = 0;
  for (let i = 0; i < n; i++) { const v = map.novelty[i]; if (v > top) top = v; }
  for (let i = 0; i < n; i++) {
    x[i] = map.xy[2 * i]; y[i] = map.xy[2 * i + 1];
    const v = map.novelty[i]; b[i] = Number.isNaN(v) || top <= 0 ? 0 : Math.min(1, v / top);
  }
  const canvas = $("canvas");
  const { width, height } = canvas.getBoundingClientRect();
  if (!plot) {
    plot = createScatterplot({ canvas, width, height, pointSize: n > 200000 ? 2 : 4, performanceMode: n > 200000,
                               lassoColor: "#111827", backgroundColor: "#ffffff" });
    plot.subscribe("pointover", (i) => hover(i));
    plot.subscribe("select", ({ points }) => select(points));
    plot.subscribe("deselect", () => select([]));
    window.addEventListener("resize", () => { const r = canvas.getBoundingClientRect(); plot.set({ width: r.width, height: r.height }); });
    ui.plot = plot;
  }
  view = { x, y, b };
  await colorBy($("color-by").value);
  ui.points = plot.get("points").length;
  ui.drawMs = performance.now() - started;
  const produced = map.head.production;
  const rec = map.head.counts[1];
  const row = $("sets").querySelector(`tr[data-set="${setId}"] .rec`);
  if (row) row.textContent = produced ? `${(100 * rec / produced).toFixed(1)}%` : "-";
  status(`${n.toLocaleString()} points drawn in ${(ui.drawMs / 1000).toFixed(1)} s`);
  ui.ready = true;
  labelNext();
  drift(setId, map.head.production_times);
}

async function labelNext() {
  ui.sent = null;
  $("label-next-from").textContent = "recommended inputs, most novel first";
  $("download-selection").hidden = true;
  const n = map.head.points, picks = [];
  for (let i = map.head.training; i < n; i++) if (map.category[i] === 1) picks.push(i);
  picks.sort((a, b) => (map.novelty[b] || 0) - (map.novelty[a] || 0));
  const top = picks.slice(0, 20);
  const list = $("label-next");
  if (!top.length) { list.innerHTML = '<li class="muted">nothing recommended yet</li>'; return; }
  const rows = (await (await api(`/v1/sets/${ui.setId}/points/export`, postJson({ indices: top }))).json()).rows;
  const byIndex = new Map(rows.map((r) => [r.index, r]));
  list.innerHTML = top.map((i) => `<li data-index="${i}">${escapeHtml(byIndex.get(i)?.preview || byIndex.get(i)?.input_uri)} <span class="muted">${map.novelty[i].toFixed(3)}</span></li>`).join("");
  for (const li of list.children) li.onclick = () => { plot.select([Number(li.dataset.index)]); hover(Number(li.dataset.index)); };
}

function postJson(body) { return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }; }

async function drift(setId, times) {
  const box = $("drift");
  if (!times) { box.textContent = "no production inputs yet"; return; }
  box.textContent = "computing…";
  try {
    // The last two weeks of the set's own inputs (not of the clock: a set may have been quiet since).
    const until = times[1] + 1, since = Math.max(times[0], until - 14 * 86400);
    const report = await (await api(`/v1/sets/${setId}/drift`, postJson({ window: "1d", since, until }))).json();
    const windows = report.windows.filter((w) => w.count > 0);
    if (!windows.length) { box.textContent = report.message || "no production inputs yet"; return; }
    const rows = windows.slice(-10).map((w) => {
      const share = w.recommended_share == null ? "-" : `${(100 * w.recommended_share).toFixed(1)}%`;
      const promised = w.reference_share == null ? "-" : `${(100 * w.reference_share).toFixed(1)}%`;
      const verdict = w.verdict === "drift" ? `<span class="flag">drift</span>` : escapeHtml(w.verdict);
      return `<tr title="${escapeHtml(w.message)}"><td>${new Date(w.start * 1000).toISOString().slice(0, 10)}</td><td>${w.count}</td><td>${share}</td><td>${promised}</td><td>${verdict}</td></tr>`;
    });
    box.innerHTML = `<table><tr><th>day</th><th>n</th><th>rec.</th><th>promised</th><th>verdict</th></tr>${rows.join("")}</table>`;
  } catch (e) { box.textContent = `no drift figures: ${e.message}`; }
}

async function hover(index) {
  if (index == null || index < 0) return;
  ui.hovered = index;
  try {
    const p = await (await api(`/v1/sets/${ui.setId}/points/${index}`)).json();
    if (ui.hovered !== index) return;
    const answer = p.answer ? `<p><b>${escapeHtml(p.answer.training_recommended ? "training_recommended" : p.answer.not_useful ? "not_useful" : "neutral")}</b> ${escapeHtml((p.answer.recommendations || []).join(", "))}</p>` : "";
    const near = p.nearest.map((n) => `<li>${escapeHtml(n.preview || n.input_uri)} <span class="muted">${n.similarity.toFixed(3)}</span></li>`).join("");
    $("point").innerHTML = `<p class="muted">${p.mode} #${p.row}</p><p><b>${escapeHtml(p.input_uri)}</b></p>` +
      (p.preview ? `<p>${escapeHtml(p.preview)}</p>` : "") + answer +
      (near ? `<p class="muted">nearest training inputs</p><ol>${near}</ol>` : "");
    ui.hoverShown = index;
  } catch (e) { $("point").textContent = e.message; }
}

// The lasso's production inputs, as `chroma select` answers them, become the label-next list (and a file).
async function sendSelection() {
  const selection = await (await api(`/v1/sets/${ui.setId}/points/select`, postJson({ indices: ui.selected }))).json();
  ui.sent = selection;
  $("label-next-from").textContent = `from your selection: ${selection.picks.length} production inputs, ` +
    `${selection.recommended} recommended, highest priority first`;
  const list = $("label-next");
  list.innerHTML = selection.picks.slice(0, 50).map((p, k) =>
    `<li data-index="${selection.indices[k]}">${escapeHtml(p.preview || p.input_uri)} <span class="muted">${p.priority.toFixed(2)}</span></li>`).join("") ||
    '<li class="muted">no production inputs in the selection</li>';
  for (const li of list.children) if (li.dataset.index) li.onclick = () => { plot.select([Number(li.dataset.index)]); hover(Number(li.dataset.index)); };
  $("download-selection").hidden = !selection.picks.length;
}

function downloadSelection() {
  const { indices, ...selection } = ui.sent;  // the file is what `chroma select --json` prints
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(selection, null, 1)], { type: "application/json" }));
  link.download = `chroma-${ui.setId.slice(0, 12)}-selection.json`;
  document.body.appendChild(link); link.click(); link.remove();
}

async function select(points) {
  ui.selected = Array.from(points);
  $("export").disabled = !ui.selected.length;
  $("send").disabled = !ui.selected.length;
  if (!ui.selected.length) { $("selection").textContent = "Shift+drag a lasso around points."; return; }
  const counts = [0, 0, 0, 0];
  for (const i of ui.selected) counts[map.category[i]]++;
  const rows = (await (await api(`/v1/sets/${ui.setId}/points/export`, postJson({ indices: ui.selected.slice(0, 20) }))).json()).rows;
  $("selection").innerHTML = `<p><b>${ui.selected.length.toLocaleString()}</b> points: ` +
    map.head.categories.map((c, i) => `${counts[i]} ${NAMES[c]}`).join(", ") + "</p><ol>" +
    rows.map((r) => `<li>${escapeHtml(r.preview || r.input_uri)}</li>`).join("") + "</ol>";
}

function csvCell(v) { const s = v == null ? "" : String(v); return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s; }

async function exportSelection() {
  const rows = (await (await api(`/v1/sets/${ui.setId}/points/export`, postJson({ indices: ui.selected }))).json()).rows;
  const columns = ["index", "mode", "id", "input_uri", "preview", "label", "answer"];
  const text = [columns.join(",")].concat(rows.map((r) => columns.map((c) => csvCell(r[c])).join(","))).join("\n") + "\n";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  link.download = `chroma-${ui.setId.slice(0, 12)}-selection.csv`;
  document.body.appendChild(link); link.click(); link.remove();
}

$("key").value = sessionStorage.getItem("chroma-key") || "";
$("connect").onclick = loadSets;
$("export").onclick = exportSelection;
$("send").onclick = () => sendSelection().catch((e) => { ui.errors.push(String(e)); status(`cannot send the selection: ${e.message}`); });
$("download-selection").onclick = downloadSelection;
$("color-by").onchange = (e) => colorBy(e.target.value);
$("method").onchange = () => { if (ui.setId) openSet(ui.setId).catch((e) => { ui.errors.push(String(e)); status(`cannot project: ${e.message}`); }); };
window.addEventListener("error", (e) => ui.errors.push(String(e.message)));
loadSets();
