// Understudy dashboard: one page, no build step. The monitor streams its status and events over
// server-sent events (/stream); this script redraws the picture, the tables and the failover timeline.
"use strict";

const state = { status: null, events: [], seen: new Set(), rates: [], lastCommit: null };
const $ = (id) => document.getElementById(id);
const svgNs = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const node = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function shortAddress(address) {
  if (!address) return "–";
  return address.replace(/^127\.0\.0\.1:/, ":").replace(/^localhost:/, ":");
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms === 0) return "0 ms";
  if (ms < 1) return ms.toFixed(2) + " ms";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

function fmtTime(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function memberClass(m, status) {
  if (m.role === "down") return "down";
  if (m.role === "primary") return "primary";
  return m.inSync ? "backup" : "catching";
}

const colors = { primary: "#3fb950", backup: "#58a6ff", catching: "#d29922", down: "#f85149", muted: "#8b98a5" };

function drawTopology(status) {
  const svg = $("topology");
  svg.replaceChildren();
  const members = status.members;
  const width = 900, monitorX = 450, monitorY = 58, serverY = 238;
  const n = Math.max(members.length, 1);
  const slot = width / n;
  const positions = members.map((m, i) => ({ m, x: slot * i + slot / 2, y: serverY }));

  // heartbeat lines (monitor <-> server)
  for (const p of positions) {
    const alive = p.m.state === "alive";
    svg.appendChild(el("line", {
      x1: monitorX, y1: monitorY + 34, x2: p.x, y2: p.y - 52,
      stroke: alive ? colors.muted : colors.down, "stroke-width": 1.5, "stroke-dasharray": "5 5",
      opacity: alive ? 0.8 : 0.5,
    }));
    const age = p.m.heartbeatAgeMs;
    svg.appendChild(el("text", {
      x: (monitorX + p.x) / 2 + (p.x < monitorX ? -8 : 8), y: (monitorY + 34 + p.y - 52) / 2,
      fill: alive ? colors.muted : colors.down, "font-size": 11, "text-anchor": p.x < monitorX ? "end" : p.x > monitorX ? "start" : "middle",
    }, age === null || age === undefined ? "no heartbeat" : "♥ " + fmtMs(age) + " ago"));
  }

  // replication arrows (primary -> backups)
  const primary = positions.find((p) => p.m.role === "primary");
  if (primary) {
    for (const p of positions) {
      if (p === primary || p.m.role === "down") continue;
      const color = p.m.inSync ? colors.primary : colors.catching;
      const y = serverY + 70;
      const path = `M ${primary.x} ${primary.y + 52} C ${primary.x} ${y + 20}, ${p.x} ${y + 20}, ${p.x} ${p.y + 52}`;
      svg.appendChild(el("path", { d: path, fill: "none", stroke: color, "stroke-width": 3, opacity: 0.85, "marker-end": "url(#arrow-" + (p.m.inSync ? "ok" : "lag") + ")" }));
    }
  }

  const defs = el("defs");
  for (const [id, color] of [["ok", colors.primary], ["lag", colors.catching]]) {
    const marker = el("marker", { id: "arrow-" + id, viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto-start-reverse" });
    marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: color }));
    defs.appendChild(marker);
  }
  svg.appendChild(defs);

  // monitor box
  svg.appendChild(el("rect", { x: monitorX - 120, y: monitorY - 34, width: 240, height: 68, rx: 10, fill: "#1d2530", stroke: "#bc8cff", "stroke-width": 2 }));
  svg.appendChild(el("text", { x: monitorX, y: monitorY - 8, fill: "#e6edf3", "font-size": 16, "font-weight": 700, "text-anchor": "middle" }, "monitor"));
  svg.appendChild(el("text", { x: monitorX, y: monitorY + 16, fill: colors.muted, "font-size": 12, "text-anchor": "middle" },
    `epoch ${status.epoch} · ${status.phase} · lease ${fmtMs(status.leaseRemainingMs)}`));

  if (!members.length) {
    svg.appendChild(el("text", { x: monitorX, y: serverY, fill: colors.muted, "font-size": 15, "text-anchor": "middle" }, "waiting for servers to send heartbeats…"));
  }

  // server boxes
  for (const p of positions) {
    const cls = memberClass(p.m, status);
    const color = colors[cls];
    const g = el("g", { "data-member": p.m.address, "data-role": p.m.role });
    g.appendChild(el("rect", { x: p.x - 105, y: p.y - 52, width: 210, height: 104, rx: 12, fill: "#11171e", stroke: color, "stroke-width": p.m.role === "primary" ? 4 : 2 }));
    g.appendChild(el("text", { x: p.x, y: p.y - 26, fill: "#e6edf3", "font-size": 16, "font-weight": 700, "text-anchor": "middle" }, shortAddress(p.m.address)));
    g.appendChild(el("text", { x: p.x, y: p.y - 4, fill: color, "font-size": 14, "font-weight": 700, "text-anchor": "middle", "letter-spacing": 1 },
      p.m.role === "primary" ? "PRIMARY" : p.m.role === "down" ? "DOWN" : p.m.inSync ? "BACKUP · in sync" : "BACKUP · catching up"));
    g.appendChild(el("text", { x: p.x, y: p.y + 18, fill: colors.muted, "font-size": 12, "text-anchor": "middle" },
      p.m.role === "down" ? (p.m.downReason || p.m.state) : `log ${p.m.logEnd} · lag ${p.m.lag} · e${p.m.epoch}`));
    g.appendChild(el("text", { x: p.x, y: p.y + 38, fill: colors.muted, "font-size": 11, "text-anchor": "middle" },
      p.m.pid ? `pid ${p.m.pid}` : ""));
    if (p.m.role === "down") {
      g.appendChild(el("path", { d: `M ${p.x - 95} ${p.y - 44} L ${p.x + 95} ${p.y + 44} M ${p.x + 95} ${p.y - 44} L ${p.x - 95} ${p.y + 44}`, stroke: colors.down, "stroke-width": 2, opacity: 0.35 }));
    }
    svg.appendChild(g);
  }
}

function drawMembers(status) {
  const body = $("members").tBodies[0];
  body.replaceChildren();
  if (!status.members.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 9;
    td.className = "empty";
    td.textContent = "no server has reported yet: start servers pointed at this monitor (./understudy server --port 8090 ...)";
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const m of status.members) {
    const tr = document.createElement("tr");
    const cells = [
      shortAddress(m.address), m.role, m.state, m.inSync ? "yes" : "no", m.epoch, m.logEnd, m.lag,
      m.heartbeatAgeMs === null || m.heartbeatAgeMs === undefined ? "–" : fmtMs(m.heartbeatAgeMs), m.pid || "–",
    ];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 1) td.className = "role-" + m.role;
      if (i === 3) td.className = m.inSync ? "yes" : "no";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}

function updateRate(status) {
  const primary = status.members.find((m) => m.role === "primary");
  const now = performance.now();
  if (primary) {
    if (state.lastCommit && state.lastCommit.address === primary.address) {
      const dt = (now - state.lastCommit.at) / 1000;
      if (dt > 0.2) {
        const rate = Math.max(0, (primary.commitIndex - state.lastCommit.commit) / dt);
        state.rates.push(rate);
        if (state.rates.length > 120) state.rates.shift();
        state.lastCommit = { address: primary.address, commit: primary.commitIndex, at: now };
      }
    } else {
      state.lastCommit = { address: primary.address, commit: primary.commitIndex, at: now };
    }
  }
  const latest = state.rates.length ? state.rates[state.rates.length - 1] : 0;
  $("rate").textContent = Math.round(latest).toLocaleString();
  const canvas = $("spark");
  const ctx = canvas.getContext("2d");

  // Draw at the size the canvas is shown (and the screen's pixel density), so nothing is stretched.
  const dpr = window.devicePixelRatio || 1;
  const box = canvas.getBoundingClientRect();
  const w = Math.max(100, Math.round(box.width)), h = Math.max(60, Math.round(box.height)), top = 22, bottom = 6;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(10, ...state.rates);
  const step = w / 119;
  const points = state.rates.map((r, i) => [w - (state.rates.length - 1 - i) * step, h - bottom - (r / max) * (h - top - bottom)]);
  ctx.strokeStyle = "#2a3440";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, h - bottom + 0.5);
  ctx.lineTo(w, h - bottom + 0.5);
  ctx.stroke();
  if (points.length > 1) {
    ctx.beginPath();
    ctx.moveTo(points[0][0], h - bottom);
    for (const [x, y] of points) ctx.lineTo(x, y);
    ctx.lineTo(points[points.length - 1][0], h - bottom);
    ctx.closePath();
    ctx.fillStyle = "rgba(63, 185, 80, 0.15)";
    ctx.fill();
    ctx.beginPath();
    points.forEach(([x, y], i) => (i === 0 ? ctx.moveTo(x, y) : ctx.lineTo(x, y)));
    ctx.strokeStyle = "#3fb950";
    ctx.lineWidth = 2.5;
    ctx.stroke();
  }
  ctx.fillStyle = "#8b98a5";
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillText(`messages/s committed by the primary · last 30 s · peak ${Math.round(max).toLocaleString()}`, 2, 13);
}

// The monitor group as the answering monitor sees it: who is active, the term, and each member's reachability.
function drawMonitors(status) {
  const group = status.monitors;
  const body = $("monitors").tBodies[0];
  body.replaceChildren();
  if (!group) {
    $("monitor-role").textContent = "–";
    $("monitor-term").textContent = "–";
    $("monitor-summary").textContent = "this monitor does not report a group";
    return;
  }
  $("monitor-role").textContent = group.isActive ? "active" : "follower";
  $("monitor-role").className = group.isActive ? "yes" : "";
  $("monitor-term").textContent = group.term;
  const quorum = group.hasQuorum ? "reaches a quorum" : "NO QUORUM: grants no lease, cannot change the configuration";
  $("monitor-summary").textContent =
    `${group.coordinator} · ${group.members.length} member(s) · active ${shortAddress(group.active)} · term ${group.term} · this monitor ${quorum}`;
  $("monitor-summary").className = group.hasQuorum ? "hint" : "hint role-down";
  for (const m of group.members) {
    const tr = document.createElement("tr");
    tr.dataset.address = m.address;
    const cells = [shortAddress(m.address), m.active ? "active" : "follower", m.state, m.self ? "this one" : ""];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 1 && m.active) td.className = "role-primary";
      if (i === 2) td.className = m.state === "up" ? "yes" : m.state === "lagging" ? "no" : "role-down";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
}

function drawStatus(status) {
  state.status = status;
  $("phase").textContent = status.phase;
  $("phase").className = "pill " + status.phase;
  $("epoch").textContent = status.epoch;
  $("version").textContent = status.version;
  $("primary").textContent = shortAddress(status.primary);
  $("lease").textContent = fmtMs(status.leaseRemainingMs);
  drawTopology(status);
  drawMembers(status);
  drawMonitors(status);
  updateRate(status);
}

// A failover is the run of events from PrimaryFailed (or SwitchoverStarted, ForcedPromotion) to the Promoted and
// ClientsNotified that follow. A suspicion the primary recovered from before any promotion is kept, but marked.
function failovers(events) {
  const list = [];
  let open = null;
  const start = (e, kind) => {
    if (open && !open.promoted) open.recovered = true;
    open = { kind, failed: e, promoted: null, notified: null, completed: null, recovered: false };
    list.push(open);
  };
  for (const e of events) {
    if (e.kind === "PrimaryFailed") start(e, "failover");
    else if (e.kind === "SwitchoverStarted") start(e, "switchover");
    else if (e.kind === "ForcedPromotion") start(e, "forced promotion");
    else if (e.kind === "SwitchoverFailed" && open && open.kind === "switchover" && !open.promoted) { open.failedSwitchover = e; open = null; }
    else if (e.kind === "MemberUp" && open && open.kind === "failover" && !open.promoted && e.member === open.failed.member) { open.recovered = true; open = null; }
    else if (e.kind === "Promoted") {
      if (!open || open.promoted) { open = { kind: "failover", failed: null, promoted: e, notified: null, completed: null, recovered: false }; list.push(open); }
      else open.promoted = e;
    } else if (e.kind === "ClientsNotified" && open && open.promoted && !open.notified) {
      open.notified = e;
      if (open.kind !== "switchover") open = null;
    } else if (e.kind === "SwitchoverCompleted" && open && open.kind === "switchover") { open.completed = e; open = null; }
  }
  return list.reverse();
}

function span(ms) { return ms === null || ms === undefined || isNaN(ms) ? null : Math.max(0, ms); }

function drawFailovers() {
  const ol = $("failovers");
  const items = failovers(state.events);
  ol.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "no failover yet: kill the primary (./understudy kill 1) or run ./understudy switchover to see one here";
    ol.appendChild(li);
    return;
  }
  for (const f of items.slice(0, 12)) {
    const li = document.createElement("li");
    const from = f.failed ? shortAddress(f.kind === "switchover" ? f.failed.detail.replace(/^from /, "") : f.failed.member) : "?";
    const head = document.createElement("div");
    head.className = "fo-head";
    const title = document.createElement("span");
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = fmtTime((f.failed || f.promoted).at);
    const why = document.createElement("div");
    why.className = "fo-why";
    if (f.recovered || f.failedSwitchover) {
      li.setAttribute("data-testid", "suspicion");
      li.className = "recovered";
      title.innerHTML = `<b>${f.kind}</b> ${from} → <i>none</i>`;
      why.textContent = f.failedSwitchover ? "switchover abandoned: " + f.failedSwitchover.detail : (f.failed ? f.failed.detail + " · " : "") + "the primary recovered before any promotion";
      head.append(title, when);
      li.append(head, why);
      ol.appendChild(li);
      continue;
    }
    li.setAttribute("data-testid", "failover");
    const to = f.promoted ? shortAddress(f.promoted.member) : "…";
    title.innerHTML = `<b>${f.kind}</b> ${from} → <b data-testid="failover-to">${to}</b>${f.promoted ? " · epoch " + f.promoted.epoch : ""}`;
    why.textContent = f.kind === "switchover" ? "planned handover: writes paused at the old primary until the target held the whole log"
      : f.failed ? f.failed.detail : "";
    head.append(title, when);

    // What the monitor measured: detection (or the request) to promotion, of which the configuration write is the
    // tail; clients are told in the same step, so "clients told" is the gap between those two events.
    const wall = f.failed && f.promoted ? new Date(f.promoted.at) - new Date(f.failed.at) : null;
    const total = span(f.kind === "switchover" ? (f.completed ? f.completed.elapsedMs : wall) : (f.promoted && f.promoted.elapsedMs !== null ? f.promoted.elapsedMs : wall));
    const store = span(f.notified ? f.notified.elapsedMs : null);
    const decide = total !== null && store !== null ? Math.max(0, total - store) : total;
    const told = f.notified && f.promoted ? span(new Date(f.notified.at) - new Date(f.promoted.at)) : null;
    const bar = document.createElement("div");
    bar.className = "fo-bar";
    const whole = (decide || 0) + (store || 0) + (told || 0) || 1;
    for (const [cls, ms] of [["decide", decide], ["store", store], ["notify", told]]) {
      if (ms === null) continue;
      const seg = document.createElement("span");
      seg.className = cls;
      seg.style.width = Math.max(1.5, (ms / whole) * 100) + "%";
      bar.appendChild(seg);
    }
    const steps = document.createElement("div");
    steps.className = "fo-steps";
    const first = f.kind === "switchover" ? "handover" : "detected → decided";
    steps.innerHTML =
      `<span><i class="decide"></i>${first} <b>${fmtMs(decide)}</b></span>` +
      `<span><i class="store"></i>configuration stored <b>${fmtMs(store)}</b></span>` +
      `<span><i class="notify"></i>clients told <b>${told === null ? "…" : "+" + fmtMs(told)}</b></span>` +
      `<span>total <b>${fmtMs(total === null ? null : total + (told || 0))}</b>${f.notified ? " · " + f.notified.detail.split(" told")[0] : ""}</span>`;
    li.append(head, why, bar, steps);
    ol.appendChild(li);
  }
}

function addEvents(events) {
  let added = false;
  for (const e of events) {
    if (state.seen.has(e.sequence)) continue;
    state.seen.add(e.sequence);
    state.events.push(e);
    added = true;
  }
  if (!added) return;
  state.events.sort((a, b) => a.sequence - b.sequence);
  if (state.events.length > 500) state.events.splice(0, state.events.length - 500);
  const body = $("events").tBodies[0];
  body.replaceChildren();
  for (const e of state.events.slice().reverse().slice(0, 200)) {
    const tr = document.createElement("tr");
    const cells = [fmtTime(e.at), e.kind, shortAddress(e.member), e.detail + (e.elapsedMs !== null && e.elapsedMs !== undefined ? ` (${fmtMs(e.elapsedMs)})` : "")];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 1) td.className = "kind " + e.kind;
      if (i === 3) td.className = "detail";
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  drawFailovers();
}

function connect() {
  $("monitor-host").textContent = location.host;
  const source = new EventSource("/stream");
  const live = $("live");
  source.addEventListener("open", () => {
    // Each connection starts with the whole history (a restarted monitor numbers its events afresh).
    state.events = [];
    state.seen = new Set();
    live.className = "live on";
    live.textContent = "● live";
  });
  source.addEventListener("error", () => {
    live.className = "live off";
    live.textContent = "○ reconnecting…";
  });
  source.addEventListener("status", (m) => drawStatus(JSON.parse(m.data)));
  source.addEventListener("events", (m) => addEvents(JSON.parse(m.data)));
}

connect();
