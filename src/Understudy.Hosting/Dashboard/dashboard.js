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
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const max = Math.max(10, ...state.rates);
  ctx.strokeStyle = "#3fb950";
  ctx.lineWidth = 2;
  ctx.beginPath();
  state.rates.forEach((r, i) => {
    const x = (i / 119) * canvas.width;
    const y = canvas.height - 4 - (r / max) * (canvas.height - 12);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#8b98a5";
  ctx.font = "11px system-ui";
  ctx.fillText(`messages/s (peak ${Math.round(max).toLocaleString()})`, 6, 12);
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
  updateRate(status);
}

// A failover is the run of events from PrimaryFailed to the Promoted and ClientsNotified that follow.
function failovers(events) {
  const list = [];
  let open = null;
  for (const e of events) {
    if (e.kind === "PrimaryFailed") {
      open = { failed: e, promoted: null, notified: null };
      list.push(open);
    } else if (e.kind === "Promoted") {
      if (!open || open.promoted) { open = { failed: null, promoted: e, notified: null }; list.push(open); }
      else open.promoted = e;
    } else if (e.kind === "ClientsNotified" && open && open.promoted && !open.notified) {
      open.notified = e;
      open = null;
    } else if (e.kind === "SwitchoverStarted") {
      open = { failed: e, promoted: null, notified: null, switchover: true };
      list.push(open);
    }
  }
  return list.reverse();
}

function drawFailovers() {
  const ol = $("failovers");
  const items = failovers(state.events);
  ol.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = "no failover yet";
    ol.appendChild(li);
    return;
  }
  for (const f of items.slice(0, 12)) {
    const li = document.createElement("li");
    li.setAttribute("data-testid", "failover");
    const detectToPromote = f.promoted && f.failed ? (new Date(f.promoted.at) - new Date(f.failed.at)) : null;
    const promoteMs = f.promoted && f.promoted.elapsedMs !== null ? f.promoted.elapsedMs : detectToPromote;
    const notifyMs = f.notified ? f.notified.elapsedMs : null;
    const total = (promoteMs || 0) + (notifyMs || 0) || 1;
    const from = f.failed ? shortAddress(f.failed.member) : "?";
    const to = f.promoted ? shortAddress(f.promoted.member) : "…";
    const head = document.createElement("div");
    head.className = "fo-head";
    head.innerHTML = `<span><b>${f.switchover ? "switchover" : "failover"}</b> ${from} → <b data-testid="failover-to">${to}</b>${f.promoted ? " (epoch " + f.promoted.epoch + ")" : ""}</span>`;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = fmtTime((f.failed || f.promoted).at) + (f.failed && !f.switchover ? " · " + f.failed.detail : "");
    head.appendChild(when);
    const bar = document.createElement("div");
    bar.className = "fo-bar";
    for (const [cls, ms] of [["promote", promoteMs], ["notify", notifyMs]]) {
      if (ms === null || ms === undefined) continue;
      const seg = document.createElement("span");
      seg.className = cls;
      seg.style.width = Math.max(2, (ms / total) * 100) + "%";
      bar.appendChild(seg);
    }
    const steps = document.createElement("div");
    steps.className = "fo-steps";
    steps.innerHTML =
      `<span>detected → promoted <b>${fmtMs(promoteMs)}</b></span>` +
      `<span>→ clients told <b>${fmtMs(notifyMs)}</b></span>` +
      (f.notified ? `<span>${f.notified.detail.split(" told")[0]}</span>` : "");
    li.append(head, bar, steps);
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
  source.addEventListener("open", () => $("live").classList.add("on"));
  source.addEventListener("error", () => $("live").classList.remove("on"));
  source.addEventListener("status", (m) => drawStatus(JSON.parse(m.data)));
  source.addEventListener("events", (m) => addEvents(JSON.parse(m.data)));
}

connect();
