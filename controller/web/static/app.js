// evfuse web page: live state from /api/events (server-sent events, one update a second) and
// the last hours from /api/history, drawn on <canvas>. No libraries, nothing from elsewhere.
"use strict";

const COLORS = {
  phase: ["#8a4b16", "#1b1b1b", "#868e96"],  // L1 brown, L2 black, L3 grey: the wire colours
  fuse: "#c92a2a", limit: "#e67700", chargeLimit: "#1c7ed6", draw: "#2f9e44", grid: "#e3e3de",
  text: "#5c5c5c",
  // marks: the cut colour is used by nothing else (the browser test looks for it)
  mark: { cut: "#e03131", fallback: "#7048e8", fault: "#f08c00", pause: "#495057", resume: "#495057" },
};
const MARK_WORDS = { cut: "overload cut", fallback: "meter lost: fallback", fault: "fault",
                     pause: "paused", resume: "resumed" };
const MISSING = -32768;
const STALE_S = 4;  // no update for this long: say so

const S = { status: null, hist: null, range: 3600, session: null, lastUpdate: 0, cap: 21600 };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);  // text is always text: never parsed as HTML
  return e;
}
const amps = (x) => (x === null || x === undefined ? "–" : `${x.toFixed(1)} A`);
const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const hhmm = (t) => new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });

// ------------------------------------------------------------------ live state

function render(s) {
  S.status = s;
  const m = s.meter;
  const age = m.sample_age_s === null ? "" : ` · sample ${m.sample_age_s.toFixed(1)} s old`;
  $("meter").textContent = `meter ${m.state}${age}`;
  $("meter").className = m.state === "ok" ? "sub" : "sub flag";

  const banner = $("banner");
  const lines = [];
  if (s.paused) lines.push(`All charging paused: ${s.paused}`);
  if (s.slow_mode) lines.push("Slow mode: every charger capped at the fallback current");
  if (m.state === "lost") lines.push("Meter lost: every charger at its fallback current");
  banner.hidden = lines.length === 0;
  banner.className = m.state === "lost" ? "bad" : "";
  banner.textContent = lines.join(" · ");

  $("phases").replaceChildren(...s.phases.map((p) => phaseRow(p, s.site)));
  const picking = document.activeElement && document.activeElement.closest("#chargers select");
  if (!picking) $("chargers").replaceChildren(...s.chargers.map((c) => chargerCard(c, s.overrides || {})));
  const loads = s.loads || [];
  $("loads-section").hidden = loads.length === 0;
  $("loads").replaceChildren(...loads.map(loadRow));
  $("faults").replaceChildren(...(s.faults.length ? s.faults.map((f) => el("li", {}, f))
                                                  : [el("li", { class: "none" }, "none")]));
  $("events").replaceChildren(...s.events.slice(-8).reverse().map((e) =>
    el("li", {}, el("span", { class: "time" }, clock(e.t)), e.text)));
  const pause = $("pause");
  pause.textContent = s.paused ? "Resume charging" : "Pause all charging";
  pause.classList.toggle("resume", !!s.paused);
}

function loadRow(x) {
  // A switchable load runs all or nothing: on or off, its draw, and why.
  const draw = x.measured_w !== null ? `${x.measured_w.toFixed(0)} W`
    : x.learned_w !== null ? `${x.learned_w} W (learned)` : `${x.power_w} W (configured)`;
  return el("li", { class: `load ${x.state}`, "data-load": x.id },
    el("strong", {}, x.id), ` ${x.state} · ${draw} · ${x.reason}`);
}

function phaseRow(p, site) {
  const load = p.load_a;
  const fill = el("div", { class: "fill" });
  if (load !== null) {
    fill.style.width = `${Math.min(100, Math.max(0, (load / site.fuse_a) * 100))}%`;
    if (load > p.limit_a) fill.classList.add("bad");
    else if (load > 0.9 * p.limit_a) fill.classList.add("warn");
  }
  const limit = el("div", { class: "limit", title: `limit ${p.limit_a} A` });
  limit.style.left = `calc(${(p.limit_a / site.fuse_a) * 100}% - 1px)`;
  const free = p.headroom_a === null ? "" : p.headroom_a < 0 ? `${(-p.headroom_a).toFixed(1)} A over`
    : `${p.headroom_a.toFixed(1)} A free`;
  return el("div", { class: "phase", "data-phase": p.phase },
    el("div", { class: "row" },
      el("span", {}, el("span", { class: "name" }, `${p.phase} `), el("span", { class: "load" }, amps(load)),
         el("span", { class: "sub" }, ` of ${site.fuse_a} A fuse`)),
      el("span", { class: p.headroom_a < 0 ? "headroom flag" : "headroom sub" }, free)),
    el("div", { class: "bar" }, fill, limit));
}

function chargerCard(c, overrides) {
  const draw = c.draw_a && c.draw_a.length ? c.draw_a.map((x) => x.toFixed(1)).join(" / ") + " A" : "–";
  const limit = amps(c.limit_a) + (c.acknowledged_a !== null && c.acknowledged_a !== c.limit_a
    ? ` (charger holds ${amps(c.acknowledged_a)})` : "");
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "link"), el("dd", {}, `${c.protocol}, ${c.connected ? "connected" : "offline"}`),
    el("dt", {}, "car"), el("dd", {}, c.car.replace("-", " ")),
    el("dt", {}, "limit"), el("dd", { class: "limit" }, limit),
    el("dt", {}, "draw"), el("dd", { class: "draw" }, draw));
  const overridden = overrides[c.id] && overrides[c.id].mode !== undefined;
  if (c.mode) facts.append(el("dt", {}, "mode"), el("dd", { class: "mode" },
    S.session && S.session.authorized ? modePicker(c, overridden) : c.mode + (overridden ? " (set on the web page or MQTT)" : "")));
  const card = el("div", { class: "charger", "data-id": c.id },
    el("div", { class: "row" }, el("span", { class: "id" }, c.id),
       el("span", { class: `badge ${c.state.replace(/ /g, "-")}` }, c.state)),
    facts, el("div", { class: "reason" }, c.reason || ""));
  if (!c.compliant) card.append(el("div", { class: "flag" }, "not following its limit"));
  return card;
}

// ------------------------------------------------------------------ history

function decode(v) { return v === null || v === MISSING ? NaN : v / 10; }

async function loadHistory() {
  const buf = await (await fetch("/api/history")).arrayBuffer();
  const dv = new DataView(buf);
  const n = dv.getUint32(0, true);
  const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  let off = 4 + n;
  const series = {};
  for (const name of head.series) {
    const a = new Array(head.count);
    for (let i = 0; i < head.count; i++, off += 2) a[i] = decode(dv.getInt16(off, true));
    series[name] = a;
  }
  if (!S.hist && head.count < 900) { S.range = 900; markRange(); }  // a young history: the short view
  S.hist = { end: head.end, count: head.count, series, marks: head.marks };
  draw();
}

function append(sample, marks) {
  const h = S.hist;
  if (!h || !S.status) return;
  if (h.end === null) h.end = sample.t - 1;
  const k = Math.round(sample.t - h.end);
  if (k <= 0) return;
  const values = {};
  S.status.phases.forEach((p, i) => { values[`phase:${p.phase}`] = decode(sample.phases[i]); });
  for (const [id, [limit, drawn]] of Object.entries(sample.chargers)) {
    values[`limit:${id}`] = decode(limit);
    values[`draw:${id}`] = decode(drawn);
  }
  for (const name of Object.keys(values)) if (!h.series[name]) h.series[name] = new Array(h.count).fill(NaN);
  for (const [name, a] of Object.entries(h.series)) {
    for (let i = 1; i < k; i++) a.push(NaN);
    a.push(name in values ? values[name] : NaN);
    if (a.length > S.cap + 600) a.splice(0, a.length - S.cap);
  }
  const any = Object.values(h.series)[0];
  h.count = any ? any.length : 0;
  h.end = sample.t;
  h.marks.push(...marks);
  if (h.marks.length > 600) h.marks.splice(0, h.marks.length - 500);
}

function niceStep(max) {
  for (const s of [1, 2, 5, 10, 20, 50, 100, 200, 500]) if (max / s <= 5) return s;
  return 1000;
}

// One plot: lines (values per second ending at hist.end), reference lines, marks.
function plot(canvas, lines, refs, yMin) {
  const h = S.hist;
  const dpr = window.devicePixelRatio || 1;
  const W = Math.round(canvas.clientWidth * dpr), H = Math.round(canvas.clientHeight * dpr);
  if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, W, H);
  const L = Math.round(34 * dpr), R = Math.round(6 * dpr), T = Math.round(6 * dpr), B = Math.round(18 * dpr);
  // The window: the chosen range, but no wider than the history there is (a minute at least),
  // so a young history is not a sliver at the right edge.
  const t1 = h.end === null ? Date.now() / 1000 : h.end, t0 = t1 - Math.min(S.range, Math.max(h.count, 60));
  const first = Math.max(0, h.count - Math.ceil(t1 - t0) - 1);
  let yMax = yMin;
  for (const l of lines) for (let i = first; i < l.values.length; i++) if (l.values[i] > yMax) yMax = l.values[i];
  for (const r of refs) yMax = Math.max(yMax, r.value);
  yMax *= 1.08;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (Math.max(0, v) / yMax) * (H - T - B);
  g.font = `${Math.round(11 * dpr)}px system-ui, sans-serif`;
  g.fillStyle = COLORS.text;
  g.lineWidth = dpr;
  const step = niceStep(yMax);
  for (let v = 0; v <= yMax; v += step) {
    g.strokeStyle = COLORS.grid;
    g.beginPath(); g.moveTo(L, Math.round(y(v)) + 0.5); g.lineTo(W - R, Math.round(y(v)) + 0.5); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(`${v} A`, L - 4 * dpr, y(v));
  }
  const tick = [20, 60, 300, 600, 900, 1800, 3600, 7200].find((s) => (t1 - t0) / s <= 4) || 7200;
  g.textAlign = "center"; g.textBaseline = "top";
  const label = tick < 60 ? clock : hhmm;
  for (let t = Math.ceil(t0 / tick) * tick; t <= t1; t += tick) {
    const text = label(t), half = g.measureText(text).width / 2;
    if (x(t) - half >= L && x(t) + half <= W) g.fillText(text, x(t), H - B + 3 * dpr);  // never under the A labels
  }

  const kinds = new Set();
  const w = Math.max(2, Math.round(2 * dpr));
  for (const m of h.marks) {  // behind the data: whole device pixels, so colours stay exact
    if (m.t < t0 || m.t > t1) continue;
    kinds.add(m.kind);
    g.fillStyle = COLORS.mark[m.kind] || COLORS.mark.fault;
    g.fillRect(Math.round(x(m.t)) - (w >> 1), T, w, H - T - B);
  }
  canvas.dataset.marks = [...kinds].sort().join(" ");

  for (const r of refs) {
    g.strokeStyle = r.color; g.lineWidth = 1.5 * dpr; g.setLineDash(r.dash.map((d) => d * dpr));
    g.beginPath(); g.moveTo(L, y(r.value)); g.lineTo(W - R, y(r.value)); g.stroke();
    g.setLineDash([]);
    g.fillStyle = r.color; g.textAlign = "left"; g.textBaseline = r.below ? "top" : "bottom";
    g.fillText(r.label, L + 4 * dpr, y(r.value) + (r.below ? 3 : -2) * dpr);
  }
  const perPx = (t1 - t0) / (W - L - R);
  for (const l of lines) drawLine(g, l, first, h, x, y, perPx, dpr);
}

// A line through every second, or a min..max band per pixel when seconds outnumber pixels
// (a short spike never disappears in the 6 h view). Missing seconds leave a gap.
function drawLine(g, l, first, h, x, y, perPx, dpr) {
  const a = l.values;
  const tAt = (i) => h.end - (a.length - 1 - i);
  g.strokeStyle = l.color; g.lineWidth = l.width * dpr; g.lineJoin = "round";
  g.beginPath();
  let open = false;
  const bucket = Math.max(1, Math.floor(perPx));
  for (let i = first; i < a.length; i += bucket) {
    let lo = Infinity, hi = -Infinity;
    for (let j = i; j < Math.min(a.length, i + bucket); j++) {
      const v = a[j];
      if (v === v) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    if (lo === Infinity) { open = false; continue; }
    const px = x(tAt(i));
    if (!open) { g.moveTo(px, y(hi)); open = true; } else g.lineTo(px, y(hi));
    if (lo !== hi) g.lineTo(px, y(lo));
  }
  g.stroke();
}

function draw() {
  const h = S.hist, s = S.status;
  if (!h || !s) return;
  const phaseLines = s.phases.map((p, i) => ({ values: h.series[`phase:${p.phase}`] || [],
                                               color: COLORS.phase[i], width: 1.6 }));
  plot($("plot-phases"), phaseLines, [
    { value: s.site.fuse_a, color: COLORS.fuse, dash: [6, 4], label: `fuse ${s.site.fuse_a} A` },
    { value: s.site.limit_a, color: COLORS.limit, dash: [2, 3], label: `limit ${s.site.limit_a} A`, below: true },
  ], 10);
  const legend = s.phases.map((p, i) => el("span", {}, swatch(COLORS.phase[i]), `phase ${p.phase}`));
  for (const kind of ["cut", "fallback", "fault"]) legend.push(el("span", {}, swatch(COLORS.mark[kind], "mark"), MARK_WORDS[kind]));
  $("legend-phases").replaceChildren(...legend);

  const box = $("plot-chargers");
  for (const c of s.chargers) {
    let canvas = box.querySelector(`canvas[data-id="${CSS.escape(c.id)}"]`);
    if (!canvas) {
      canvas = el("canvas", { class: "plot small", "data-id": c.id });
      box.append(el("h3", {}, `${c.id}: limit and draw`), canvas,
                 el("div", { class: "legend" }, el("span", {}, swatch(COLORS.chargeLimit), "limit"),
                    el("span", {}, swatch(COLORS.draw), "draw (highest line)")));
    }
    plot(canvas, [{ values: h.series[`limit:${c.id}`] || [], color: COLORS.chargeLimit, width: 2 },
                  { values: h.series[`draw:${c.id}`] || [], color: COLORS.draw, width: 1.4 }], [], 6);
  }
  const t0 = (h.end || 0) - Math.min(S.range, Math.max(h.count, 60));
  $("marks").replaceChildren(...h.marks.filter((m) => m.t >= t0 && m.kind !== "resume").slice(-12).reverse()
    .map((m) => el("li", { class: `mark ${m.kind}` }, el("span", { class: "time" }, clock(m.t)),
                   swatch(COLORS.mark[m.kind] || COLORS.mark.fault, "mark"), ` ${m.text}`)));
  if (!$("marks").children.length) $("marks").append(el("li", {}, "no cuts, fallbacks or faults in this window"));
}

function swatch(color, kind) {
  const i = el("i", kind ? { class: kind } : {});
  i.style.background = color;
  return i;
}

// ------------------------------------------------------------------ controls

function modePicker(c, overridden) {
  const pick = el("select", { "data-id": c.id, "aria-label": `mode of ${c.id}` });
  for (const m of S.session.modes) {
    const o = el("option", { value: m }, m);
    if (m === c.mode) o.selected = true;
    pick.append(o);
  }
  if (overridden) pick.append(el("option", { value: "" }, "as in the config file"));
  pick.addEventListener("change", async () => {
    try {
      const r = await post(`/api/chargers/${encodeURIComponent(c.id)}/mode`, { mode: pick.value || null });
      say(`${r.id}: mode ${r.mode}`);
    } catch (e) { say(e.message); }
    pick.blur();  // the list follows the service again
  });
  return pick;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                body: JSON.stringify(body), credentials: "same-origin" });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(answer.error || `HTTP ${r.status}`);
  return answer;
}

function say(text) { $("control-msg").textContent = text; }

async function loadSession() {
  S.session = await (await fetch("/api/session")).json();
  S.cap = S.session.history_s || S.cap;
  $("controls").hidden = !S.session.controls;
  $("login").hidden = !S.session.controls || S.session.authorized;
  $("commands").hidden = !S.session.authorized;
  if (S.status) render(S.status);  // the mode pickers come and go with the login
}

function wireControls() {
  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await post("/api/login", { password: $("password").value });
      $("password").value = "";
      say("logged in");
    } catch (e) { say(e.message); }
    await loadSession();
  });
  $("logout").addEventListener("click", async () => {
    await post("/api/logout", {}).catch(() => {});
    say("logged out");
    await loadSession();
  });
  $("pause").addEventListener("click", async () => {
    const paused = !(S.status && S.status.paused);
    try {
      const r = await post("/api/pause", { paused });
      say(!r.paused ? "charging resumed" : paused ? `paused: ${r.paused}`
        : `still ${r.paused}: resume it there`);
    } catch (e) { say(e.message); await loadSession(); }
  });
  for (const b of document.querySelectorAll("#ranges button")) {
    b.addEventListener("click", () => { S.range = Number(b.dataset.s); markRange(); draw(); });
  }
  markRange();
}

function markRange() {
  for (const b of document.querySelectorAll("#ranges button")) b.classList.toggle("on", Number(b.dataset.s) === S.range);
}

// ------------------------------------------------------------------ start

function listen() {
  const es = new EventSource("/api/events");
  let broken = false;
  es.onmessage = (ev) => {
    const u = JSON.parse(ev.data);
    S.lastUpdate = Date.now();
    render(u.status);
    append(u.sample, u.marks);
    draw();
    if (broken) { broken = false; loadHistory().catch(() => {}); }  // fill the gap
  };
  es.onerror = () => { broken = true; };
}

function tick() {
  const quiet = (Date.now() - S.lastUpdate) / 1000;
  const link = $("link");
  const live = S.lastUpdate && quiet < STALE_S;
  link.textContent = live ? "live" : S.lastUpdate ? `no update for ${Math.round(quiet)} s` : "connecting…";
  link.className = live ? "pill" : "pill bad";
}

async function start() {
  wireControls();
  await loadSession().catch(() => {});
  render(await (await fetch("/api/status")).json());
  await loadHistory().catch(() => {});
  listen();
  setInterval(tick, 1000);
  window.addEventListener("resize", draw);
}

start();
