// The page: sets, a set's map (regl-scatterplot over the binary /v1/sets/{id}/map body), hover, lasso, export.
// Everything it shows comes from the keyed /v1 routes; the key stays in this tab's sessionStorage.
"use strict";

const COLORS = ["#9ca3af", "#dc2626", "#2563eb", "#f59e0b"];
const NAMES = { training: "training", training_recommended: "recommended", not_useful: "not useful", production: "production, other" };
const $ = (id) => document.getElementById(id);
const ui = (window.chromaUI = { ready: false, points: 0, selected: [], hovered: null, setId: null, errors: [] });
let plot = null;
let map = null;

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
  return { head, xy, novelty, category };
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

function legend(head) {
  $("legend").innerHTML = head.categories.map((c, i) =>
    `<span class="swatch" style="background:${COLORS[i]}"></span>${NAMES[c]} (${head.counts[i]})`).join("");
}

function colorBy(mode) {
  if (!plot) return;
  if (mode === "novelty") plot.set({ colorBy: "valueB", pointColor: ["#e5e7eb", "#fde68a", "#f59e0b", "#dc2626", "#7f1d1d"] });
  else plot.set({ colorBy: "valueA", pointColor: COLORS });
}

async function openSet(setId) {
  ui.ready = false; ui.setId = setId; ui.selected = [];
  for (const row of $("sets").querySelectorAll("tbody tr")) row.classList.toggle("active", row.dataset.set === setId);
  status("projecting…");
  const started = performance.now();
  map = parseMap(await (await api(`/v1/sets/${setId}/map`)).arrayBuffer());
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
  await plot.draw({ x, y, valueA: Array.from(map.category), valueB: b }, { zDataType: "categorical", wDataType: "continuous" });
  colorBy($("color-by").value);
  legend(map.head);
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

async function select(points) {
  ui.selected = Array.from(points);
  $("export").disabled = !ui.selected.length;
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
$("color-by").onchange = (e) => colorBy(e.target.value);
window.addEventListener("error", (e) => ui.errors.push(String(e.message)));
loadSets();
