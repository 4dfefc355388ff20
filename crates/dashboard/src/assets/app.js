"use strict";
// The dashboard page: one server-sent event stream (/api/events) redraws the jobs every second;
// the buttons POST to /api/job/JOB/checkpoint. The token comes from this page's URL.
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const sections = new Map();
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i + 1 < units.length) { n /= 1024; i++; }
    return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
  }
  function utc(secs) {
    return new Date(secs * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
  }
  function shortTime(secs) {
    return new Date(secs * 1000).toISOString().slice(11, 19);
  }

  function connect() {
    const source = new EventSource("/api/events?token=" + encodeURIComponent(token));
    source.addEventListener("update", (ev) => {
      $("conn").textContent = "live";
      $("conn").className = "conn live";
      render(JSON.parse(ev.data));
    });
    source.onerror = () => {
      $("conn").textContent = "reconnecting…";
      $("conn").className = "conn down";
    };
  }

  function render(data) {
    if (data.error) return;
    $("updated").textContent = "updated " + utc(data.generated_at) + " UTC";
    if (data.only_job) $("scope").textContent = "job " + data.only_job;
    const live = new Set();
    for (const job of data.jobs) {
      live.add(job.job);
      let s = sections.get(job.job);
      if (!s) {
        s = createSection(job.job);
        sections.set(job.job, s);
        $("jobs").append(s.root);
      }
      update(s, job);
    }
    for (const [name, s] of sections) {
      if (!live.has(name)) { s.root.remove(); sections.delete(name); }
    }
    $("empty").hidden = data.jobs.length > 0;
    const others = data.snapshots.filter((x) => !live.has(x.job));
    $("others").hidden = others.length === 0;
    $("snapshot-dir").textContent = data.snapshot_dir;
    $("others-body").replaceChildren(...others.map((x) => snapshotRow(x, true)));
  }

  function createSection(name) {
    const s = {};
    s.now = el("button", { type: "button", class: "ckpt-now primary", text: "Checkpoint now" });
    s.term = el("button", { type: "button", class: "ckpt-term danger", text: "Checkpoint and terminate" });
    s.now.addEventListener("click", () => ask(name, false, s));
    s.term.addEventListener("click", () => ask(name, true, s));
    s.meta = el("p", { class: "meta" });
    s.state = el("p", { class: "ckpt-state" });
    s.result = el("p", { class: "result", role: "status" });
    s.ranks = el("tbody");
    s.timeline = el("tbody");
    s.plot = el("div");
    s.recoveries = el("ul");
    s.recoveriesHead = el("h3", { text: "Failures and recoveries" });
    s.root = el("section", { class: "job", "data-job": name },
      el("div", { class: "job-head" }, el("h2", { text: name }), el("div", { class: "actions" }, s.now, s.term)),
      s.meta, s.state, s.result,
      el("h3", { text: "Processes" }),
      el("table", { class: "procs" },
        el("thead", {}, el("tr", {},
          el("th", { text: "Rank" }), el("th", { text: "Node" }), el("th", { text: "PID" }),
          el("th", { text: "State" }), el("th", { class: "num", text: "CPU" }),
          el("th", { class: "num", text: "CPU time" }), el("th", { class: "num", text: "Memory (RSS)" }),
          el("th", { text: "Address" }))),
        s.ranks),
      el("h3", { text: "Checkpoint timeline" }),
      el("div", { class: "timeline-area" },
        el("table", { class: "timeline" },
          el("thead", {}, el("tr", {},
            el("th", { text: "Epoch" }), el("th", { text: "Time (UTC)" }), el("th", { class: "num", text: "Size" }),
            el("th", { text: "Checkpointer" }), el("th", { class: "num", text: "In transit" }), el("th", { text: "Name" }))),
          s.timeline),
        s.plot),
      s.recoveriesHead, s.recoveries);
    return s;
  }

  function update(s, job) {
    s.meta.textContent = "launcher pid " + job.launcher_pid + " · started " + utc(job.started_at) +
      " UTC · " + job.ranks.length + " ranks · " + job.command.join(" ");
    const c = job.checkpoint;
    const parts = [];
    if (c && c.in_progress) {
      const p = c.in_progress;
      parts.push("checkpoint " + p.epoch + " in progress: " + p.reported + " of " + p.ranks + " ranks " +
        (p.phase === "counting" ? "sent their safepoint counts" : "saved their parts"));
    }
    parts.push(c && c.last ? "last snapshot " + c.last : "no snapshot of this run yet");
    if (c) parts.push("snapshots in " + c.snapshot_dir);
    s.state.textContent = parts.join(" · ");

    s.ranks.replaceChildren(...job.ranks.map((r) => el("tr", { "data-rank": String(r.rank) },
      el("td", { text: String(r.rank) }),
      el("td", { text: r.node }),
      el("td", { text: String(r.pid) }),
      el("td", {}, el("span", { class: "state state-" + r.state, text: r.state_text })),
      el("td", { class: "num", text: r.cpu_percent === null ? "–" : r.cpu_percent.toFixed(1) + " %" }),
      el("td", { class: "num", text: r.cpu_seconds === null ? "–" : r.cpu_seconds.toFixed(1) + " s" }),
      el("td", { class: "num", text: bytes(r.rss_bytes) }),
      el("td", { text: r.data_addr || "–" }))));

    if (job.snapshots.length === 0) {
      s.timeline.replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "none", text: "no snapshots yet" })));
    } else {
      s.timeline.replaceChildren(...job.snapshots.map((x) => snapshotRow(x, false)));
    }
    s.plot.replaceChildren(plot(job.snapshots));

    s.recoveriesHead.hidden = job.recoveries.length === 0;
    s.recoveries.replaceChildren(...job.recoveries.map((r, i) => el("li", {
      text: "recovery " + (i + 1) + ": " + r.failure + "; rolled back to " + r.snapshot + "; " +
        (r.recovered_ms === null ? "ranks starting" : "running again after " + r.recovered_ms + " ms"),
    })));
  }

  function snapshotRow(x, withRanks) {
    const kinds = [...new Set(x.checkpointers)].sort().join(",");
    if (withRanks) {
      return el("tr", { "data-snapshot": x.name },
        el("td", { text: x.name }), el("td", { text: String(x.epoch) }), el("td", { text: utc(x.created) }),
        el("td", { text: bytes(x.size) }), el("td", { text: String(x.ranks) }), el("td", { text: kinds }),
        el("td", { text: String(x.in_transit_messages) }));
    }
    return el("tr", { "data-snapshot": x.name },
      el("td", { text: String(x.epoch) + (x.latest ? " (latest)" : "") }), el("td", { text: utc(x.created) }),
      el("td", { class: "num", text: bytes(x.size) }), el("td", { text: kinds }),
      el("td", { class: "num", text: String(x.in_transit_messages) }), el("td", { text: x.name }));
  }

  // Checkpoint size over commit time: a line through the snapshots, oldest on the left.
  function plot(snaps) {
    const W = 340, H = 150, L = 58, R = 12, T = 14, B = 26;
    const root = svg("svg", { class: "plot", width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    root.append(svg("title", {}, "checkpoint size over time"));
    root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    if (snaps.length === 0) {
      root.append(svg("text", { x: L + 10, y: H / 2 }, "no snapshots yet"));
      return root;
    }
    const pts = [...snaps].sort((a, b) => a.created - b.created || a.epoch - b.epoch);
    const t0 = pts[0].created, t1 = pts[pts.length - 1].created;
    const maxSize = Math.max(...pts.map((p) => p.size)) || 1;
    const x = (p, i) => t1 > t0 ? L + (W - L - R) * (p.created - t0) / (t1 - t0)
      : (pts.length === 1 ? L + (W - L - R) / 2 : L + (W - L - R) * i / (pts.length - 1));
    const y = (p) => H - B - (H - B - T) * p.size / maxSize;
    root.append(svg("text", { x: 4, y: T + 4 }, bytes(maxSize)));
    root.append(svg("text", { x: 4, y: H - B }, "0"));
    root.append(svg("text", { x: L, y: H - 8 }, shortTime(t0)));
    if (t1 > t0) root.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, shortTime(t1)));
    root.append(svg("polyline", { class: "line", points: pts.map((p, i) => x(p, i).toFixed(1) + "," + y(p).toFixed(1)).join(" ") }));
    pts.forEach((p, i) => {
      const dot = svg("circle", { class: "dot", cx: x(p, i).toFixed(1), cy: y(p).toFixed(1), r: 3.5 });
      dot.append(svg("title", {}, p.name + ": " + bytes(p.size) + " at " + utc(p.created) + " UTC"));
      root.append(dot);
    });
    return root;
  }

  let pending = null;
  function ask(job, terminate, s) {
    pending = { job, terminate, s };
    $("confirm-text").textContent = terminate
      ? "Take a checkpoint of job " + job + " and then end the job? It can be run on later with mpicr restart."
      : "Take a checkpoint of job " + job + " now? The job keeps running.";
    $("confirm-yes").textContent = terminate ? "Checkpoint and terminate" : "Checkpoint";
    $("confirm").showModal();
  }
  $("confirm-no").addEventListener("click", () => { pending = null; $("confirm").close(); });
  $("confirm-yes").addEventListener("click", () => {
    const p = pending;
    pending = null;
    $("confirm").close();
    if (p) checkpoint(p.job, p.terminate, p.s);
  });

  async function checkpoint(job, terminate, s) {
    s.now.disabled = s.term.disabled = true;
    show(s, "busy", "checkpoint of " + job + " requested" + (terminate ? " (then the job ends)" : "") + "…");
    let sentence, ok = false;
    try {
      const resp = await fetch("/api/job/" + encodeURIComponent(job) + "/checkpoint", {
        method: "POST",
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify({ terminate }),
      });
      const body = await resp.json().catch(() => ({ error: "the dashboard answered " + resp.status }));
      ok = resp.ok;
      sentence = ok
        ? "checkpoint " + body.name + " committed (" + body.in_transit + " messages in transit)" +
          (terminate ? "; the job is ending" : "")
        : body.error;
    } catch (e) {
      sentence = "the dashboard could not be reached: " + e;
    }
    s.now.disabled = s.term.disabled = false;
    show(s, ok ? "ok" : "err", sentence);
    $("log-section").hidden = false;
    $("log").prepend(el("li", { class: ok ? "ok" : "err", text: new Date().toISOString().slice(11, 19) + " " + job + ": " + sentence }));
  }
  function show(s, kind, text) {
    s.result.className = "result " + kind;
    s.result.textContent = text;
  }

  connect();
})();
