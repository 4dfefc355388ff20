"use strict";
// The dashboard page: one server-sent event stream (/api/events) redraws the jobs every second;
// the buttons POST to /api/job/JOB/checkpoint, /api/job/JOB/migrate and /api/restart. The token comes from this
// page's URL. A job's buttons are those of its `actions` (the API says what it supports).
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
  function ms(n) {
    if (n === null || n === undefined) return "–";
    return n < 1000 ? n + " ms" : (n / 1000).toFixed(1) + " s";
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

  let canRestart = false;
  function render(data) {
    if (data.error) return;
    canRestart = !!data.restart;
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
    $("others-restart").hidden = !canRestart;
    $("others-body").replaceChildren(...others.map((x) => snapshotRow(x, true)));
    const restarts = data.restarts || [];
    $("restarts-section").hidden = restarts.length === 0;
    $("restarts").replaceChildren(...restarts.slice().reverse().map((r) => el("li", {
      text: utc(r.started_at) + " UTC: snapshot " + r.snapshot + " restarted as job " + r.job +
        " (mpicr restart, pid " + r.launcher_pid + ")" + (r.ended ? "; ended: " + r.ended : "; running") +
        "; output in " + r.log,
    })));
  }

  // The controls of a job's actions (see gather::actions); one not listed is not shown.
  const ACTIONS = {
    checkpoint: { label: "Checkpoint now", cls: "ckpt-now primary", terminate: false },
    terminate: { label: "Checkpoint and terminate", cls: "ckpt-term danger", terminate: true },
    migrate: { label: "Migrate", cls: "migrate" },
  };
  // A snapshot's copies beyond its parts, as its manifest recorded them (store::Redundancy).
  function redundancyCell(x) {
    const r = x.redundancy;
    let text = "none";
    if (r && r.kind !== "none") {
      text = (r.kind === "mirror" ? "mirrored ×" + r.copies : "parity of " + r.group) +
        (r.complete ? "" : " (incomplete)");
    }
    return el("td", { class: "redundancy" + (r && r.complete === false ? " incomplete" : ""), text });
  }
  function createSection(name) {
    const s = { buttons: new Map() };
    s.actions = el("div", { class: "actions" });
    s.meta = el("p", { class: "meta" });
    s.state = el("p", { class: "ckpt-state" });
    s.result = el("p", { class: "result", role: "status" });
    s.ranks = el("tbody");
    s.timeline = el("tbody");
    s.plot = el("div");
    s.recoveries = el("tbody");
    s.migrations = el("tbody");
    s.migrationsHead = el("h3", { text: "Migrations" });
    s.migrationsTable = el("table", { class: "migrations" },
      el("thead", {}, el("tr", {},
        el("th", { text: "Rank" }), el("th", { text: "From" }), el("th", { text: "To" }),
        el("th", { class: "num", text: "Time" }), el("th", { class: "num", text: "Copy" }),
        el("th", { class: "num", text: "Image" }), el("th", { text: "Failure" }))),
      s.migrations);
    s.recoveriesHead = el("h3", { text: "Failures and recoveries" });
    s.recoveriesTable = el("table", { class: "recoveries" },
      el("thead", {}, el("tr", {},
        el("th", { text: "#" }), el("th", { text: "Failure (cause)" }), el("th", { text: "Rolled back to" }),
        el("th", { class: "num", text: "Time to run again" }))),
      s.recoveries);
    s.root = el("section", { class: "job", "data-job": name },
      el("div", { class: "job-head" }, el("h2", { text: name }), s.actions),
      s.meta, s.state, s.result,
      el("h3", { text: "Processes" }),
      el("table", { class: "procs" },
        el("thead", {}, el("tr", {},
          el("th", { text: "Rank" }), el("th", { text: "Node" }), el("th", { text: "PID" }),
          el("th", { text: "State" }), el("th", { class: "num", text: "CPU" }),
          el("th", { class: "num", text: "CPU time" }), el("th", { class: "num", text: "Memory (RSS)" }),
          el("th", { text: "Address" }))),
        s.ranks),
      s.migrationsHead, s.migrationsTable,
      el("h3", { text: "Checkpoint timeline" }),
      el("div", { class: "timeline-area" },
        el("table", { class: "timeline" },
          el("thead", {}, el("tr", {},
            el("th", { text: "Epoch" }), el("th", { text: "Time (UTC)" }), el("th", { class: "num", text: "Size" }),
            el("th", { class: "num", text: "Duration" }), el("th", { text: "Checkpointer" }),
            el("th", { class: "num", text: "In transit" }), el("th", { text: "Redundancy" }),
            el("th", { text: "Name" }))),
          s.timeline),
        s.plot),
      s.recoveriesHead, s.recoveriesTable);
    return s;
  }

  function updateActions(s, name, actions) {
    for (const [key, button] of s.buttons) {
      if (!actions.includes(key)) {
        if (key === "migrate") { s.migrate.root.remove(); s.migrate = null; } else button.remove();
        s.buttons.delete(key);
      }
    }
    for (const key of actions) {
      const a = ACTIONS[key];
      if (!a || s.buttons.has(key)) continue;
      const button = el("button", { type: "button", class: a.cls, text: a.label });
      if (key === "migrate") {
        s.migrate = migrateControl(name, button, s);
        s.actions.append(s.migrate.root);
      } else {
        button.addEventListener("click", () => askCheckpoint(name, a.terminate, s));
        s.actions.append(button);
      }
      s.buttons.set(key, button);
    }
  }

  // Rank and target-node pickers in front of the migrate button; their choices survive the
  // redraws.
  function migrateControl(name, button, s) {
    const m = { rank: el("select", { class: "migrate-rank", "aria-label": "rank to migrate" }),
      node: el("select", { class: "migrate-node", "aria-label": "node to migrate it to" }) };
    m.root = el("span", { class: "migrate-control" }, "rank ", m.rank, " to ", m.node, " ", button);
    // Until the user picks a node, the target is the first node the chosen rank is not on.
    m.nodeChosen = false;
    m.node.addEventListener("change", () => { m.nodeChosen = true; });
    m.rank.addEventListener("change", () => { m.nodeChosen = false; defaultTarget(m, s.job); });
    button.addEventListener("click", () => {
      const rank = Number(m.rank.value), node = m.node.value;
      const from = (s.job.ranks.find((r) => r.rank === rank) || {}).node;
      confirmThen("Move rank " + rank + " of job " + name + " from node " + from + " to node " + node +
        "? The rank stops while its image is copied and restored there; the other ranks compute on.",
      "Migrate", () => migrate(name, rank, node, s));
    });
    return m;
  }
  function defaultTarget(m, job) {
    if (m.nodeChosen) return;
    const here = (job.ranks.find((r) => String(r.rank) === m.rank.value) || {}).node;
    const other = (job.nodes || []).find((n) => n !== here);
    if (other !== undefined) m.node.value = other;
  }
  // Replaces a picker's options when their values or labels changed, keeping the choice.
  function setOptions(select, values, label) {
    const keep = select.value;
    const labels = values.map(label);
    const now = [...select.options];
    if (now.map((o) => o.value + "=" + o.textContent).join("\n") !==
        values.map((v, i) => v + "=" + labels[i]).join("\n")) {
      select.replaceChildren(...values.map((v, i) => el("option", { value: v, text: labels[i] })));
      if (values.includes(keep)) select.value = keep;
    }
  }

  function update(s, job) {
    s.job = job;
    updateActions(s, job.job, job.actions || []);
    if (s.migrate) {
      setOptions(s.migrate.rank, job.ranks.map((r) => String(r.rank)), (v, i) => v + " (" + job.ranks[i].node + ")");
      setOptions(s.migrate.node, job.nodes || [], (v) => v);
      defaultTarget(s.migrate, job);
    }
    const recent = job.migrations ? job.migrations.recent : [];
    s.migrationsHead.hidden = s.migrationsTable.hidden = recent.length === 0;
    s.migrations.replaceChildren(...recent.slice().reverse().map((m) => el("tr", { class: m.failure ? "failed" : "done" },
      el("td", { text: String(m.rank) }), el("td", { text: m.from }), el("td", { text: m.to }),
      el("td", { class: "num", text: m.failure ? "–" : ms(Math.round(m.total_us / 1000)) }),
      el("td", { class: "num", text: m.failure ? "–" : ms(Math.round(m.transfer_us / 1000)) }),
      el("td", { class: "num", text: m.failure ? "–" : bytes(m.bytes) }),
      el("td", { class: "cause", text: m.failure || "" }))));
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
      s.timeline.replaceChildren(el("tr", {}, el("td", { colspan: "8", class: "none", text: "no snapshots yet" })));
    } else {
      s.timeline.replaceChildren(...job.snapshots.map((x) => snapshotRow(x, false)));
    }
    s.plot.replaceChildren(plot(job.snapshots));

    s.recoveriesHead.hidden = s.recoveriesTable.hidden = job.recoveries.length === 0;
    s.recoveries.replaceChildren(...job.recoveries.map((r, i) => el("tr", { "data-recovery": String(i + 1) },
      el("td", { text: String(i + 1) }),
      el("td", { class: "cause", text: r.failure }),
      el("td", { text: r.snapshot }),
      el("td", { class: "num", text: r.recovered_ms === null ? "ranks starting" : ms(r.recovered_ms) }))));
  }

  function snapshotRow(x, withRanks) {
    const kinds = [...new Set(x.checkpointers)].sort().join(",");
    if (withRanks) {
      const row = el("tr", { "data-snapshot": x.name },
        el("td", { text: x.name }), el("td", { text: String(x.epoch) }), el("td", { text: utc(x.created) }),
        el("td", { text: bytes(x.size) }), el("td", { class: "duration", text: ms(x.duration_ms) }),
        el("td", { text: String(x.ranks) }), el("td", { text: kinds }),
        el("td", { text: String(x.in_transit_messages) }), redundancyCell(x));
      if (canRestart) {
        const button = el("button", { type: "button", class: "restart", text: "Restart" });
        button.addEventListener("click", () => askRestart(x.name, button));
        row.append(el("td", {}, button));
      }
      return row;
    }
    return el("tr", { "data-snapshot": x.name },
      el("td", { text: String(x.epoch) + (x.latest ? " (latest)" : "") }), el("td", { text: utc(x.created) }),
      el("td", { class: "num", text: bytes(x.size) }), el("td", { class: "num duration", text: ms(x.duration_ms) }),
      el("td", { text: kinds }),
      el("td", { class: "num", text: String(x.in_transit_messages) }), redundancyCell(x),
      el("td", { text: x.name }));
  }

  // Checkpoint size (line, left axis) and duration (bars, right axis) over commit time, oldest
  // on the left.
  function plot(snaps) {
    const W = 380, H = 160, L = 58, R = 50, T = 16, B = 26;
    const root = svg("svg", { class: "plot", width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    root.append(svg("title", {}, "checkpoint size and duration over time"));
    root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: W - R, y1: T, x2: W - R, y2: H - B }));
    if (snaps.length === 0) {
      root.append(svg("text", { x: L + 10, y: H / 2 }, "no snapshots yet"));
      return root;
    }
    const pts = [...snaps].sort((a, b) => a.created - b.created || a.epoch - b.epoch);
    const t0 = pts[0].created, t1 = pts[pts.length - 1].created;
    const maxSize = Math.max(...pts.map((p) => p.size)) || 1;
    const timed = pts.filter((p) => p.duration_ms !== null && p.duration_ms !== undefined);
    const maxMs = Math.max(1, ...timed.map((p) => p.duration_ms));
    const x = (p, i) => t1 > t0 ? L + (W - L - R) * (p.created - t0) / (t1 - t0)
      : (pts.length === 1 ? L + (W - L - R) / 2 : L + (W - L - R) * i / (pts.length - 1));
    const y = (p) => H - B - (H - B - T) * p.size / maxSize;
    const yMs = (p) => H - B - (H - B - T) * p.duration_ms / maxMs;
    root.append(svg("text", { class: "size-label", x: 4, y: T + 4 }, bytes(maxSize)));
    root.append(svg("text", { x: 4, y: H - B }, "0"));
    root.append(svg("text", { class: "duration-label", x: W - R + 4, y: T + 4 }, ms(maxMs)));
    root.append(svg("text", { x: W - R + 4, y: H - B }, "0"));
    root.append(svg("text", { x: L, y: H - 8 }, shortTime(t0)));
    if (t1 > t0) root.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end" }, shortTime(t1)));
    root.append(svg("text", { class: "legend size-label", x: L + 4, y: T - 4 }, "— size"));
    root.append(svg("text", { class: "legend duration-label", x: L + 60, y: T - 4 }, "▮ duration"));
    pts.forEach((p, i) => {
      if (p.duration_ms === null || p.duration_ms === undefined) return;
      const top = yMs(p);
      const bar = svg("rect", { class: "bar", x: (x(p, i) - 3).toFixed(1), y: top.toFixed(1), width: 6, height: Math.max(1, H - B - top).toFixed(1) });
      bar.append(svg("title", {}, p.name + ": taken in " + ms(p.duration_ms)));
      root.append(bar);
    });
    root.append(svg("polyline", { class: "line", points: pts.map((p, i) => x(p, i).toFixed(1) + "," + y(p).toFixed(1)).join(" ") }));
    pts.forEach((p, i) => {
      const dot = svg("circle", { class: "dot", cx: x(p, i).toFixed(1), cy: y(p).toFixed(1), r: 3.5 });
      dot.append(svg("title", {}, p.name + ": " + bytes(p.size) + " at " + utc(p.created) + " UTC" +
        (p.duration_ms === null || p.duration_ms === undefined ? "" : ", taken in " + ms(p.duration_ms))));
      root.append(dot);
    });
    return root;
  }

  // The confirmation dialog: `pending` is what "yes" does.
  let pending = null;
  function confirmThen(text, yes, action) {
    pending = action;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    $("confirm").showModal();
  }
  $("confirm-no").addEventListener("click", () => { pending = null; $("confirm").close(); });
  $("confirm-yes").addEventListener("click", () => {
    const action = pending;
    pending = null;
    $("confirm").close();
    if (action) action();
  });

  function askCheckpoint(job, terminate, s) {
    confirmThen(terminate
      ? "Take a checkpoint of job " + job + " and then end the job? It can be run on later with mpicr restart."
      : "Take a checkpoint of job " + job + " now? The job keeps running.",
    terminate ? "Checkpoint and terminate" : "Checkpoint",
    () => checkpoint(job, terminate, s));
  }
  function askRestart(name, button) {
    confirmThen("Restart snapshot " + name + "? Its job runs again from that snapshot (as mpicr restart " +
      name + " does), on this machine, until it ends or is ended.", "Restart", () => restart(name, button));
  }

  async function post(path, body) {
    try {
      const resp = await fetch(path, {
        method: "POST",
        headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await resp.json().catch(() => ({ error: "the dashboard answered " + resp.status }));
      return { ok: resp.ok, body: answer };
    } catch (e) {
      return { ok: false, body: { error: "the dashboard could not be reached: " + e } };
    }
  }
  function logLine(ok, text) {
    $("log-section").hidden = false;
    $("log").prepend(el("li", { class: ok ? "ok" : "err", text: new Date().toISOString().slice(11, 19) + " " + text }));
  }

  async function checkpoint(job, terminate, s) {
    const buttons = [...s.buttons.values()];
    buttons.forEach((b) => { b.disabled = true; });
    show(s, "busy", "checkpoint of " + job + " requested" + (terminate ? " (then the job ends)" : "") + "…");
    const { ok, body } = await post("/api/job/" + encodeURIComponent(job) + "/checkpoint", { terminate });
    const sentence = ok
      ? "checkpoint " + body.name + " committed in " + ms(body.duration_ms) + " (" + bytes(body.size) + ", " +
        body.in_transit + " messages in transit)" + (terminate ? "; the job is ending" : "")
      : body.error;
    buttons.forEach((b) => { b.disabled = false; });
    show(s, ok ? "ok" : "err", sentence);
    logLine(ok, job + ": " + sentence);
  }

  async function migrate(job, rank, node, s) {
    const buttons = [...s.buttons.values()];
    buttons.forEach((b) => { b.disabled = true; });
    show(s, "busy", "migration of rank " + rank + " of " + job + " to node " + node + " requested…");
    const { ok, body } = await post("/api/job/" + encodeURIComponent(job) + "/migrate", { rank, node });
    const sentence = ok
      ? "rank " + body.rank + " moved from " + body.from + " to " + body.to + " in " +
        ms(Math.round(body.total_us / 1000)) + " (image " + bytes(body.bytes) + ", copied in " +
        ms(Math.round(body.transfer_us / 1000)) + ")"
      : body.error;
    buttons.forEach((b) => { b.disabled = false; });
    show(s, ok ? "ok" : "err", sentence);
    logLine(ok, job + ": " + sentence);
  }

  async function restart(name, button) {
    button.disabled = true;
    $("others-result").className = "result busy";
    $("others-result").textContent = "restarting " + name + "…";
    const { ok, body } = await post("/api/restart", { snapshot: name });
    const sentence = ok
      ? "snapshot " + body.snapshot + " restarted: job " + body.job + " runs again (mpicr restart, pid " +
        body.launcher_pid + "; output in " + body.log + ")"
      : body.error;
    button.disabled = false;
    $("others-result").className = "result " + (ok ? "ok" : "err");
    $("others-result").textContent = sentence;
    logLine(ok, sentence);
  }
  function show(s, kind, text) {
    s.result.className = "result " + kind;
    s.result.textContent = text;
  }

  connect();
})();
