// Baton's dashboard: a thin client of the node's public REST API (and its SSE streams).
// No framework, no build step, nothing fetched from elsewhere. Text from the API is only
// ever set as text, never as markup.

const main = document.getElementById("main");
const KEY = "baton-key";
let stopPage = () => {};

// ---- DOM ---------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    // Through the CSSOM: the page's CSP refuses style attributes.
    else if (k === "style") el.style.cssText = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

const statusEl = (s) => h("span", { class: `status ${s}`, "data-status": s }, s);
const fmtTime = (t) => (t ? new Date(t).toLocaleTimeString() : "–");
const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`);
const pct = (x) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)}%`);
const usd = (x) => `$${(x || 0).toFixed(4)}`;

// ---- API -----------------------------------------------------------------------------

class NeedKey extends Error {}

function headers(json) {
  const hd = {};
  const key = sessionStorage.getItem(KEY);
  if (key) hd.authorization = `Bearer ${key}`;
  if (json) hd["content-type"] = "application/json";
  return hd;
}

async function api(path, opts = {}) {
  const resp = await fetch(path, {
    method: opts.method || "GET",
    headers: headers(opts.body !== undefined),
    body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
  });
  if (resp.status === 401) throw new NeedKey();
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body?.error?.message || `${resp.status} ${resp.statusText}`);
  return body;
}

// Follows an SSE stream with fetch (EventSource cannot send a key). Calls on(event, data)
// for each event; resolves when the stream ends or `signal` aborts.
async function follow(path, on, signal) {
  const resp = await fetch(path, { headers: headers(false), signal });
  if (resp.status === 401) throw new NeedKey();
  if (!resp.ok || !resp.body) throw new Error(`${resp.status} ${resp.statusText}`);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) {
        try { on(event, JSON.parse(data.join("\n"))); } catch { /* keep-alive or text */ }
      }
    }
  }
}

function askForKey(retry) {
  show(
    h("h1", {}, "This node asks for an API key"),
    h("form", {
      onsubmit: (e) => {
        e.preventDefault();
        sessionStorage.setItem(KEY, e.target.key.value.trim());
        retry();
      },
    },
      h("label", { for: "key" }, "API key"),
      h("input", { id: "key", name: "key", type: "password", autocomplete: "off", required: true }),
      h("p", { class: "muted" }, "Kept in this tab only (sessionStorage), sent as a bearer token."),
      h("button", { type: "submit" }, "Use key")),
  );
  document.getElementById("key").focus();
}

// ---- Pages ---------------------------------------------------------------------------

function chart(series) {
  const w = 600, hgt = 120, pad = 4;
  const done = series.map((p) => p.completed + p.failed + p.cancelled);
  const max = Math.max(1, ...done);
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, series.length - 1);
  const y = (v) => hgt - pad - (v * (hgt - 2 * pad)) / max;
  const line = (vals) => vals.map((v, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${hgt}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Tasks finished per bucket: completed and failed");
  for (const [vals, color] of [[series.map((p) => p.completed), "#1a7f37"], [series.map((p) => p.failed), "#c62828"]]) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", line(vals));
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", color);
    path.setAttribute("stroke-width", "2");
    path.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(path);
  }
  return svg;
}

// Success rate over time: a line from 0 to 100%, gaps where nothing finished.
function rateChart(rates) {
  const w = 600, hgt = 120, pad = 4;
  const x = (i) => pad + (i * (w - 2 * pad)) / Math.max(1, rates.length - 1);
  const y = (v) => hgt - pad - v * (hgt - 2 * pad);
  let d = "", pen = false;
  rates.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
    pen = true;
  });
  const svg = svgEl("svg", { viewBox: `0 0 ${w} ${hgt}`, class: "chart", preserveAspectRatio: "none", role: "img", "aria-label": "Share of finished tasks that completed, per minute" });
  svg.append(svgEl("path", { d: d || "M0,0", fill: "none", stroke: "#2f5bea", "stroke-width": "2", "vector-effect": "non-scaling-stroke" }));
  // A dot per minute that had finishes, so a lone minute shows too.
  rates.forEach((v, i) => {
    if (v !== null) svg.append(svgEl("circle", { cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: "3", fill: "#2f5bea", "data-rate": v.toFixed(3) }));
  });
  return svg;
}

async function overview() {
  const [a, byQueue, queues, servers, failures, peerList] = await Promise.all([
    api("/v1/analytics?since=1h&group_by=tool&bucket_seconds=60"),
    api("/v1/analytics?since=1h&group_by=queue&bucket_seconds=3600"),
    api("/v1/queues"),
    api("/v1/servers"),
    api("/v1/tasks?status=failed&limit=10"),
    // Peers need the admin scope: without it the card says so instead of failing.
    api("/v1/peers").then((p) => p.peers).catch(() => null),
  ]);
  const waits = new Map(byQueue.groups.map((g) => [g.key, g.wait_ms?.p95]));
  const live = peerList ? peerList.filter((p) => p.health === "healthy") : [];
  const rate = (p) => (p.completed + p.failed > 0 ? p.completed / (p.completed + p.failed) : null);
  const t = a.totals;
  const finished = (t.counts.completed || 0) + (t.counts.failed || 0) + (t.counts.cancelled || 0);
  show(
    h("h1", {}, "Overview"),
    h("div", { class: "grid stats" },
      h("div", { class: "card" }, h("h2", {}, "Tasks, last hour"), h("div", { class: "stat", id: "total" }, t.total), h("div", { class: "muted" }, `${finished} finished, ${queues.active_tasks} active`)),
      h("div", { class: "card" }, h("h2", {}, "Success rate"), h("div", { class: "stat" }, pct(t.success_rate)), h("div", { class: "muted" }, `${t.retries} retries`)),
      h("div", { class: "card" }, h("h2", {}, "Wait p95 / run p95"), h("div", { class: "stat" }, `${fmtMs(t.wait_ms?.p95)} / ${fmtMs(t.run_ms?.p95)}`)),
      h("div", { class: "card" }, h("h2", {}, "Cost, last hour"), h("div", { class: "stat" }, usd(t.cost_usd))),
      h("div", { class: "card", id: "peers-card" }, h("h2", {}, "Nodes and workers"),
        h("div", { class: "stat" }, peerList ? `${live.length} / ${peerList.length}` : "–"),
        h("div", { class: "muted" }, peerList ? `healthy; ${live.reduce((n, p) => n + p.running, 0)} tasks running` : "needs the admin scope"))),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Finished per minute (completed, failed)"), chart(t.series)),
      h("div", { class: "card" }, h("h2", {}, "Success rate per minute"), rateChart(t.series.map(rate)))),
    h("div", { class: "grid" },
      h("div", { class: "card scroll" }, h("h2", {}, "By tool"),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Tool"), h("th", {}, "Tasks"), h("th", {}, "Success"), h("th", {}, "p95 run"), h("th", {}, "Cost"))),
          h("tbody", {}, a.groups.map((g) => h("tr", {}, h("td", {}, g.key), h("td", {}, g.total), h("td", {}, pct(g.success_rate)), h("td", {}, fmtMs(g.run_ms?.p95)), h("td", {}, usd(g.cost_usd))))))),
      h("div", { class: "card scroll" }, h("h2", {}, "Queues"),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Queue"), h("th", {}, "Pending"), h("th", {}, "Running"), h("th", {}, "Wait p95"))),
          h("tbody", {}, queues.queues.map((q) => h("tr", {}, h("td", {}, q.name, q.paused ? h("span", { class: "muted" }, " (paused)") : null), h("td", {}, q.counts.pending), h("td", {}, q.counts.running), h("td", {}, fmtMs(waits.get(q.name)))))))),
      h("div", { class: "card scroll" }, h("h2", {}, "MCP servers"),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Server"), h("th", {}, "State"), h("th", {}, "Tools"), h("th", {}, "Latency"))),
          h("tbody", {}, (servers.servers || []).map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, s.state), h("td", {}, s.tool_count), h("td", {}, fmtMs(s.latency_ms)))))))),
    h("div", { class: "card scroll" }, h("h2", {}, "Recent failures"),
      failures.tasks.length
        ? h("table", {}, h("tbody", {}, failures.tasks.map((f) => h("tr", {}, h("td", {}, h("a", { href: `#/tasks/${f.task_id}` }, f.tool)), h("td", { class: "wrap" }, f.error?.message || ""), h("td", {}, fmtTime(f.completed_at))))))
        : h("p", { class: "muted" }, "None.")),
  );
  const timer = setTimeout(route, 10000);
  return () => clearTimeout(timer);
}

async function tasks(params) {
  const status = params.get("status") || "";
  const tool = params.get("tool") || "";
  const q = new URLSearchParams({ limit: "100" });
  if (status) q.set("status", status);
  if (tool) q.set("tool", tool);
  const page = await api(`/v1/tasks?${q}`);
  const filter = (e) => {
    e.preventDefault();
    const f = new URLSearchParams();
    if (e.target.status.value) f.set("status", e.target.status.value);
    if (e.target.tool.value) f.set("tool", e.target.tool.value);
    location.hash = `#/tasks?${f}`;
  };
  show(
    h("h1", {}, "Tasks"),
    h("form", { class: "filters", onsubmit: filter },
      h("div", {}, h("label", { for: "f-status" }, "Status"),
        h("select", { id: "f-status", name: "status" }, ["", "pending", "running", "input_required", "completed", "failed", "cancelled"].map((s) => h("option", { value: s, selected: s === status }, s || "any")))),
      h("div", {}, h("label", { for: "f-tool" }, "Tool"), h("input", { id: "f-tool", name: "tool", value: tool, placeholder: "server__tool" })),
      h("div", {}, h("label", { "aria-hidden": "true" }, "\u00a0"), h("button", { type: "submit" }, "Filter"))),
    h("div", { class: "card scroll" },
      h("table", { id: "task-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Task"), h("th", {}, "Tool"), h("th", {}, "Queue"), h("th", {}, "Status"), h("th", {}, "Progress"), h("th", {}, "Created"))),
        h("tbody", {}, page.tasks.map((t) => h("tr", {},
          h("td", {}, h("a", { href: `#/tasks/${t.task_id}`, title: t.task_id }, `…${t.task_id.slice(-12)}`)),
          h("td", {}, t.tool), h("td", {}, t.queue), h("td", {}, statusEl(t.status)),
          h("td", {}, t.progress === null || t.progress === undefined ? "" : pct(t.progress)),
          h("td", {}, fmtTime(t.created_at))))))),
  );
  // Live: the list is read again every two seconds while it is shown.
  const timer = setTimeout(route, 2000);
  return () => clearTimeout(timer);
}

// A tool's result as MCP content: text as text, images as images, resource links as
// links (only http(s) ones clickable), anything else as JSON.
function content(result) {
  const blocks = Array.isArray(result?.content) ? result.content : [];
  const out = [];
  for (const b of blocks) {
    if (b.type === "text") out.push(h("pre", { class: "content-text" }, b.text));
    else if (b.type === "image" && typeof b.data === "string" && /^image\/(png|jpeg|gif|webp)$/.test(b.mimeType || "")) {
      out.push(h("img", { class: "content-image", alt: "image from the tool", src: `data:${b.mimeType};base64,${b.data}` }));
    } else if (b.type === "resource_link") {
      const safe = /^https?:\/\//.test(b.uri || "");
      out.push(h("p", {}, "Resource: ", safe ? h("a", { href: b.uri, rel: "noopener noreferrer", target: "_blank" }, b.name || b.uri) : `${b.name || ""} ${b.uri || ""}`));
    } else out.push(h("pre", {}, JSON.stringify(b, null, 2)));
  }
  if (result?.structuredContent !== undefined) out.push(h("details", {}, h("summary", {}, "Structured content"), h("pre", {}, JSON.stringify(result.structuredContent, null, 2))));
  return out.length ? out : [h("pre", {}, JSON.stringify(result, null, 2))];
}

// The tree of tasks that delegated to each other around `t`: its ancestors up to the root,
// and from there every descendant (bounded), each with its tool and status; `t` marked.
async function lineageTree(t) {
  const seen = new Map([[t.task_id, t]]);
  let root = t;
  for (let depth = 0; root.parent_id && depth < 10; depth++) {
    const parent = await api(`/v1/tasks/${root.parent_id}`).catch(() => null);
    if (!parent) break;
    seen.set(parent.task_id, parent);
    root = parent;
  }
  let budget = 100;
  const node = async (task, depth) => {
    const here = task.task_id === t.task_id;
    const label = h("a", { href: `#/tasks/${task.task_id}`, "aria-current": here ? "true" : null, title: task.task_id }, task.tool);
    const item = h("li", { "data-task": task.task_id }, label, " ", statusEl(task.status));
    const kids = task.children || [];
    if (kids.length && depth < 6) {
      const list = h("ul", {});
      for (const id of kids) {
        if (budget-- <= 0) { list.append(h("li", { class: "muted" }, "…")); break; }
        const child = seen.get(id) || (await api(`/v1/tasks/${id}`).catch(() => null));
        if (child) list.append(await node(child, depth + 1));
      }
      item.append(list);
    }
    return item;
  };
  return h("ul", { class: "tree" }, await node(root, 0));
}

async function task(id) {
  const t = await api(`/v1/tasks/${id}`);
  const status = h("span", { id: "task-status" }, statusEl(t.status));
  const bar = h("div", { style: `width:${((t.progress || 0) * 100).toFixed(0)}%` });
  const message = h("span", { id: "task-message", class: "muted" }, t.progress_message || "");
  const timeline = h("tbody", {});
  const logs = h("div", { class: "log", id: "task-logs", "aria-live": "polite" });
  const result = h("div", { id: "task-result" });
  const showOutcome = (r, e) => {
    if (r) result.replaceChildren(...content(r));
    else if (e) result.replaceChildren(h("pre", { class: "error" }, JSON.stringify(e, null, 2)));
    else result.replaceChildren(h("p", { class: "muted" }, "—"));
  };
  showOutcome(t.result, t.error);
  const err = h("p", { class: "error", role: "alert" });
  const act = async (method, path) => {
    try { await api(path, { method }); } catch (e) { err.textContent = e.message; }
  };
  const inputSlot = h("div", {});
  let asked = "";
  const showInput = async () => {
    const now = await api(`/v1/tasks/${id}`).catch(() => null);
    const requests = now?.status === "input_required" ? now.input_requests : null;
    const keys = requests ? Object.keys(requests).join(",") : "";
    if (keys === asked) return;
    asked = keys;
    inputSlot.replaceChildren(...(requests ? [inputCard(id, requests, () => { asked = ""; inputSlot.replaceChildren(); })] : []));
  };
  const cancelBtn = h("button", { class: "danger", id: "cancel", onclick: () => act("DELETE", `/v1/tasks/${id}`) }, "Cancel");
  const retryBtn = h("button", { class: "secondary", id: "retry", onclick: async () => { await act("POST", `/v1/tasks/${id}/retry`); route(); } }, "Retry");
  const final = (s) => ["completed", "failed", "cancelled"].includes(s);
  const setStatus = (s) => {
    status.replaceChildren(statusEl(s));
    cancelBtn.disabled = final(s);
    retryBtn.disabled = !(s === "failed" || s === "cancelled");
  };
  setStatus(t.status);
  const lineage = h("div", { id: "lineage" });
  if (t.parent_id || (t.children || []).length) lineageTree(t).then((tree) => lineage.replaceChildren(h("h2", {}, "Lineage"), tree)).catch(() => {});
  show(
    h("h1", {}, t.tool, " ", status),
    h("div", { class: "card" },
      h("div", { class: "bar", role: "progressbar", "aria-label": "Progress" }, bar),
      h("p", {}, message),
      h("div", { class: "actions" }, cancelBtn, retryBtn), err,
      h("p", { class: "muted" }, `Task ${t.task_id} · queue ${t.queue} · attempt ${t.attempt} of ${t.max_attempts}`, t.workflow_id ? ` · workflow ${t.workflow_id}` : ""),
      lineage),
    inputSlot,
    h("div", { class: "grid" },
      h("div", { class: "card scroll" }, h("h2", {}, "Timeline"), h("table", {}, timeline)),
      h("div", { class: "card" }, h("h2", {}, "Logs"), logs)),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Arguments"), h("pre", {}, JSON.stringify(t.arguments, null, 2))),
      h("div", { class: "card" }, h("h2", {}, "Result"), result)),
  );
  if (t.status === "input_required") showInput();
  const controller = new AbortController();
  follow(`/v1/tasks/${id}/events`, (event, data) => {
    if (event === "log") {
      const text = typeof data.data === "string" ? data.data : JSON.stringify(data.data);
      logs.append(h("div", { class: `level-${data.level}` }, `${fmtTime(data.at)} ${data.level} ${data.logger ? `[${data.logger}] ` : ""}${text}`));
      return;
    }
    timeline.append(h("tr", {}, h("td", {}, fmtTime(data.at)), h("td", {}, event), h("td", {}, data.progress === null || data.progress === undefined ? "" : pct(data.progress)), h("td", { class: "wrap" }, data.message || "")));
    if (data.progress !== null && data.progress !== undefined) bar.style.width = `${(data.progress * 100).toFixed(0)}%`;
    if (data.message) message.textContent = data.message;
    if (data.status) setStatus(data.status);
    if (data.status) showInput();
    if (final(data.status) && !data.message) message.textContent = "";
    if (data.result || data.error) showOutcome(data.result, data.error);
  }, controller.signal).catch((e) => {
    if (e.name !== "AbortError") err.textContent = `Live updates stopped: ${e.message}`;
  });
  return () => controller.abort();
}

async function workflows() {
  const page = await api("/v1/workflows?limit=100");
  show(
    h("h1", {}, "Workflows"),
    h("div", { class: "card scroll" },
      page.workflows.length
        ? h("table", { id: "workflow-table" },
          h("thead", {}, h("tr", {}, h("th", {}, "Workflow"), h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Steps"), h("th", {}, "Created"))),
          h("tbody", {}, page.workflows.map((w) => h("tr", {},
            h("td", {}, h("a", { href: `#/workflows/${w.workflow_id}`, title: w.workflow_id }, `…${w.workflow_id.slice(-12)}`)),
            h("td", {}, w.name), h("td", {}, statusEl(w.status)),
            h("td", {}, `${w.progress.steps_finished} / ${w.progress.steps_total}`),
            h("td", {}, fmtTime(w.created_at))))))
        : h("p", { class: "muted" }, "No workflows yet. Submit one with POST /v1/workflows or `baton workflow run`.")),
  );
  const timer = setTimeout(route, 2000);
  return () => clearTimeout(timer);
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// The DAG in layers (a step one column right of its deepest dependency), each step a box
// coloured by state, the critical path's edges drawn heavier.
function dagSvg(dag, steps) {
  const state = Object.fromEntries(steps.map((s) => [s.step_id, s.state]));
  const deps = {};
  for (const e of dag.edges) (deps[e.to] ||= []).push(e.from);
  const depth = {};
  const depthOf = (id, seen = new Set()) => {
    if (depth[id] !== undefined) return depth[id];
    if (seen.has(id)) return 0;
    seen.add(id);
    depth[id] = Math.max(-1, ...(deps[id] || []).map((d) => depthOf(d, seen))) + 1;
    return depth[id];
  };
  for (const n of dag.nodes) depthOf(n.id);
  const columns = [];
  for (const n of dag.nodes) (columns[depth[n.id]] ||= []).push(n);
  const W = 150, H = 44, GX = 50, GY = 16;
  const pos = {};
  columns.forEach((col, c) => col.forEach((n, r) => { pos[n.id] = { x: c * (W + GX) + 4, y: r * (H + GY) + 4 }; }));
  const width = columns.length * (W + GX);
  const height = Math.max(...columns.map((c) => c.length)) * (H + GY) + 8;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, id: "dag", role: "img", "aria-label": "Workflow steps and their dependencies" });
  const colour = { completed: "#1a7f37", failed: "#c62828", cancelled: "#c62828", running: "#9a6700", pending: "#667085", skipped: "#98a2b3" };
  for (const e of dag.edges) {
    const a = pos[e.from], b = pos[e.to];
    svg.append(svgEl("path", { d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}`, fill: "none", stroke: e.critical ? "#2f5bea" : "#c5cad3", "stroke-width": e.critical ? 3 : 1.5 }));
  }
  for (const n of dag.nodes) {
    const p = pos[n.id];
    const st = state[n.id] || n.status;
    const g = svgEl("g", { "data-step": n.id, "data-state": st });
    g.append(svgEl("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6, fill: "#fff", stroke: colour[st] || "#667085", "stroke-width": n.critical ? 3 : 1.5 }));
    g.append(svgEl("text", { x: p.x + 8, y: p.y + 18, "font-size": 13, "font-weight": 600, fill: "#1d2330" }, n.id));
    g.append(svgEl("text", { x: p.x + 8, y: p.y + 35, "font-size": 11, fill: colour[st] || "#667085" }, st));
    svg.append(g);
  }
  return svg;
}

// A Gantt row per step that started: from its start to its end (or now).
function gantt(steps) {
  const started = steps.filter((s) => s.started_at);
  if (!started.length) return h("p", { class: "muted" }, "No step has started yet.");
  const t0 = Math.min(...started.map((s) => Date.parse(s.started_at)));
  const t1 = Math.max(...started.map((s) => (s.completed_at ? Date.parse(s.completed_at) : Date.now())));
  const span = Math.max(1, t1 - t0);
  return h("div", { id: "gantt" }, started.map((s) => {
    const a = Date.parse(s.started_at), b = s.completed_at ? Date.parse(s.completed_at) : Date.now();
    return h("div", { class: "gantt-row" },
      h("span", { class: "gantt-label" }, s.step_id),
      h("div", { class: "gantt-track" }, h("div", { class: `gantt-bar ${s.state}`, style: `left:${((a - t0) / span) * 100}%;width:${Math.max(0.5, ((b - a) / span) * 100)}%` })),
      h("span", { class: "muted" }, fmtMs(s.duration_ms ?? (b - a))));
  }));
}

async function workflow(id) {
  const [w, dag] = await Promise.all([api(`/v1/workflows/${id}`), api(`/v1/workflows/${id}/dag?format=json`)]);
  const err = h("p", { class: "error", role: "alert" });
  const act = async (method, path) => {
    try { await api(path, { method }); route(); } catch (e) { err.textContent = e.message; }
  };
  const over = ["completed", "failed", "cancelled"].includes(w.status);
  show(
    h("h1", {}, w.name, " ", h("span", { id: "workflow-status" }, statusEl(w.status))),
    h("div", { class: "card" },
      h("div", { class: "bar", role: "progressbar", "aria-label": "Steps finished" }, h("div", { style: `width:${(w.progress.fraction * 100).toFixed(0)}%` })),
      h("p", { class: "muted" }, `Workflow ${w.workflow_id} · ${w.progress.steps_finished} of ${w.progress.steps_total} steps finished · critical path ${fmtMs(dag.critical_path_ms)}`),
      h("div", { class: "actions" },
        h("button", { class: "danger", id: "wf-cancel", disabled: over, onclick: () => act("DELETE", `/v1/workflows/${id}`) }, "Cancel"),
        h("button", { class: "secondary", id: "wf-retry", disabled: !(w.status === "failed" || w.status === "cancelled"), onclick: () => act("POST", `/v1/workflows/${id}/retry`) }, "Retry")),
      err),
    h("div", { class: "card scroll" }, h("h2", {}, "Steps"), dagSvg(dag, w.steps)),
    h("div", { class: "card" }, h("h2", {}, "Timeline"), gantt(w.steps)),
    h("div", { class: "card scroll" },
      h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Step"), h("th", {}, "Tool"), h("th", {}, "State"), h("th", {}, "Task"), h("th", {}, "Duration"))),
        h("tbody", {}, w.steps.map((s) => h("tr", {},
          h("td", {}, s.step_id), h("td", {}, s.tool), h("td", {}, statusEl(s.state)),
          h("td", {}, s.task_id ? h("a", { href: `#/tasks/${s.task_id}` }, `…${s.task_id.slice(-12)}`) : "–"),
          h("td", {}, fmtMs(s.duration_ms))))))),
  );
  // Live while it runs: read again every second.
  if (over) return () => {};
  const timer = setTimeout(route, 1000);
  return () => clearTimeout(timer);
}

async function servers() {
  const [{ servers: list }, { tools }] = await Promise.all([api("/v1/servers"), api("/v1/tools")]);
  const err = h("p", { class: "error", role: "alert" });
  const remove = async (name) => {
    if (!confirm(`Remove the MCP server ${name}? Its tasks that have not started will fail.`)) return;
    try { await api(`/v1/servers/${encodeURIComponent(name)}`, { method: "DELETE" }); route(); } catch (e) { err.textContent = e.message; }
  };
  const add = async (e) => {
    e.preventDefault();
    err.textContent = "";
    const f = e.target.elements;
    const body = { name: f.name.value.trim() };
    const target = f.target.value.trim();
    if (/^https?:\/\//.test(target)) body.url = target;
    else {
      const [command, ...args] = target.split(/\s+/).filter(Boolean);
      body.command = command;
      body.args = args;
    }
    try { await api("/v1/servers", { method: "POST", body }); route(); } catch (x) { err.textContent = x.message; }
  };
  show(
    h("h1", {}, "MCP servers"), err,
    list.length ? null : h("p", { class: "muted" }, "No MCP servers yet: add one below, under [[servers]] in the configuration, or with POST /v1/servers."),
    list.map((s) => h("div", { class: "card", "data-server": s.name },
      h("h2", {}, s.name, " ", h("span", { class: `status ${s.state === "healthy" ? "completed" : s.state === "connecting" ? "running" : "failed"}`, "data-state": s.state }, s.state)),
      h("p", { class: "muted" }, `${s.transport} · ${s.protocol_version || "protocol unknown"} · ${s.tool_count} tools · ${s.in_flight} in flight · ${s.calls} calls · ${pct(s.error_rate)} errors · ${fmtMs(s.latency_ms)} latency`,
        s.circuit_open_for_ms ? ` · circuit open for ${fmtMs(s.circuit_open_for_ms)}` : "", s.last_error ? ` · last error: ${s.last_error}` : ""),
      h("details", {}, h("summary", {}, "Tools and their input schemas"),
        tools.filter((t) => s.tools.includes(t.name)).map((t) => h("div", {}, h("h3", {}, t.name), t.description ? h("p", { class: "muted" }, t.description) : null, h("pre", {}, JSON.stringify(t.input_schema, null, 2))))),
      s.origin === "api" ? h("div", { class: "actions" }, h("button", { class: "danger", onclick: () => remove(s.name) }, "Remove")) : null)),
    h("details", { class: "card", id: "add-server" }, h("summary", {}, "Add an MCP server (admins)"),
      h("form", { onsubmit: add },
        h("label", { for: "server-name" }, "Name"), h("input", { id: "server-name", name: "name", required: true, placeholder: "github" }),
        h("label", { for: "server-target" }, "URL of a Streamable HTTP server, or a command that serves stdio"),
        h("input", { id: "server-target", name: "target", required: true, placeholder: "https://mcp.example.com/mcp  or  npx -y @modelcontextprotocol/server-everything" }),
        h("div", { class: "actions" }, h("button", { type: "submit", id: "add-server-submit" }, "Add")))),
  );
  const timer = setTimeout(route, 5000);
  return () => clearTimeout(timer);
}

// What the last action on the queues page did; kept across the page's refreshes.
const note = h("p", { class: "muted", id: "queue-note", role: "status" });

async function queuesPage() {
  const q = await api("/v1/queues");
  const err = h("p", { class: "error", role: "alert" });
  const toggle = async (name, paused) => {
    try { await api(`/v1/queues/${encodeURIComponent(name)}/${paused ? "resume" : "pause"}`, { method: "POST" }); route(); } catch (e) { err.textContent = e.message; }
  };
  const clear = async (name, pending) => {
    if (!confirm(`Cancel the ${pending} pending task${pending === 1 ? "" : "s"} of queue ${name}?`)) return;
    try {
      const r = await api(`/v1/queues/${encodeURIComponent(name)}/clear`, { method: "POST", body: { status: "pending", confirm: true } });
      err.textContent = "";
      note.textContent = `Cancelled ${r.cancelled} task${r.cancelled === 1 ? "" : "s"} of ${name}.`;
      route();
    } catch (e) { err.textContent = e.message; }
  };
  const statuses = ["pending", "running", "input_required", "completed", "failed", "cancelled"];
  show(
    h("h1", {}, "Queues"), err, note,
    h("div", { class: "card scroll" },
      h("table", { id: "queue-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Queue"), statuses.map((s) => h("th", {}, s.replace("_", " "))), h("th", {}, "Done / min"), h("th", {}, ""))),
        h("tbody", {}, q.queues.map((x) => h("tr", { "data-queue": x.name },
          h("td", {}, x.name, x.paused ? h("span", { class: "muted", "data-paused": "true" }, " (paused)") : null),
          statuses.map((s) => h("td", {}, x.counts[s] ?? 0)),
          h("td", {}, x.completed_last_minute),
          h("td", {}, h("div", { class: "actions" },
            h("button", { class: "secondary", "data-action": x.paused ? "resume" : "pause", onclick: () => toggle(x.name, x.paused) }, x.paused ? "Resume" : "Pause"),
            h("button", { class: "danger", "data-action": "clear", disabled: !x.counts.pending, onclick: () => clear(x.name, x.counts.pending) }, "Clear pending")))))))),
  );
  const timer = setTimeout(route, 3000);
  return () => clearTimeout(timer);
}

async function peers() {
  const { peers: list } = await api("/v1/peers");
  show(
    h("h1", {}, "Peers"),
    h("p", { class: "muted" }, "The nodes and workers sharing this store."),
    h("div", { class: "card scroll" },
      h("table", { id: "peer-table" },
        h("thead", {}, h("tr", {}, ["Process", "Role", "Address", "Version", "Health", "Running", "Finished", "Tasks/s", "Last heartbeat"].map((c) => h("th", {}, c)))),
        h("tbody", {}, list.map((p) => h("tr", { "data-self": p.self ? "true" : null },
          h("td", {}, p.id, p.self ? h("span", { class: "muted" }, " (this node)") : null),
          h("td", {}, p.role), h("td", {}, p.address || "–"), h("td", {}, p.version),
          h("td", {}, h("span", { class: `status ${p.health === "healthy" ? "completed" : p.health === "late" ? "running" : "failed"}` }, p.health)),
          h("td", {}, p.running), h("td", {}, p.finished), h("td", {}, p.throughput.toFixed(1)), h("td", {}, fmtTime(p.last_heartbeat))))))),
  );
  const timer = setTimeout(route, 5000);
  return () => clearTimeout(timer);
}

async function audit() {
  const { entries } = await api("/v1/audit?limit=100");
  show(
    h("h1", {}, "Audit"),
    h("p", { class: "muted" }, "Every request that changed something or was refused, newest first."),
    h("div", { class: "card scroll" },
      h("table", { id: "audit-table" },
        h("thead", {}, h("tr", {}, ["When", "Principal", "Action", "Target", "Outcome", "Status", "From"].map((c) => h("th", {}, c)))),
        h("tbody", {}, entries.map((e) => h("tr", {},
          h("td", {}, fmtTime(e.at)), h("td", {}, e.principal), h("td", {}, e.action), h("td", { class: "wrap" }, e.target || ""),
          h("td", {}, e.outcome), h("td", {}, e.status ?? ""), h("td", {}, e.remote || "")))))),
  );
  return () => {};
}

function field(name, schema, required, prefix = "arg") {
  const id = `${prefix}-${name}`;
  const type = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  let input;
  if (type === "boolean") input = h("input", { id, name, type: "checkbox", "data-type": "boolean" });
  else if (type === "integer" || type === "number") input = h("input", { id, name, type: "number", step: type === "integer" ? "1" : "any", "data-type": "number", required });
  else if (type === "string" && Array.isArray(schema.enum)) input = h("select", { id, name, "data-type": "string", required }, schema.enum.map((v) => h("option", { value: v }, v)));
  else if (type === "string") input = h("input", { id, name, "data-type": "string", required });
  else input = h("textarea", { id, name, "data-type": "json", placeholder: "JSON", required });
  if (schema.default !== undefined) {
    if (type === "boolean") input.checked = schema.default === true;
    else input.value = typeof schema.default === "string" ? schema.default : JSON.stringify(schema.default);
  }
  return h("div", {}, h("label", { for: id }, schema.title && schema.title !== name ? `${name} (${schema.title})` : name, required ? " *" : ""), schema.description ? h("div", { class: "muted" }, schema.description) : null, input);
}

// The values of a form made of field()s.
function formValues(form) {
  const args = {};
  for (const el of form.querySelectorAll("[data-type]")) {
    const kind = el.dataset.type;
    if (kind === "boolean") { args[el.name] = el.checked; continue; }
    if (el.value === "") continue;
    args[el.name] = kind === "number" ? Number(el.value) : kind === "json" ? JSON.parse(el.value) : el.value;
  }
  return args;
}

// What the task's tool asks (while it is input_required), each with a way to answer:
// a form made from an elicitation's schema (accept, decline, cancel), else JSON.
function inputCard(id, requests, onDone) {
  const err = h("p", { class: "error", role: "alert" });
  const answer = async (key, response) => {
    try {
      await api(`/v1/tasks/${id}/input`, { method: "POST", body: { responses: { [key]: response } } });
      onDone();
    } catch (e) { err.textContent = e.message; }
  };
  return h("div", { class: "card", id: "input-card" },
    h("h2", {}, "The tool asks for input"),
    Object.entries(requests).map(([key, req]) => {
      const params = req.params || {};
      if (req.method === "elicitation/create" && params.requestedSchema) {
        const schema = params.requestedSchema;
        const required = new Set(schema.required || []);
        const form = h("form", { id: `input-${key}`, onsubmit: (e) => {
          e.preventDefault();
          let content;
          try { content = formValues(e.target); } catch (x) { err.textContent = x.message; return; }
          answer(key, { action: "accept", content });
        } },
        params.message ? h("p", {}, params.message) : null,
        Object.entries(schema.properties || {}).map(([n, sch]) => field(n, sch, required.has(n), `input-${key}`)),
        h("div", { class: "actions" },
          h("button", { type: "submit", id: `input-accept-${key}` }, "Accept"),
          h("button", { type: "button", class: "secondary", onclick: () => answer(key, { action: "decline" }) }, "Decline"),
          h("button", { type: "button", class: "secondary", onclick: () => answer(key, { action: "cancel" }) }, "Cancel")));
        return form;
      }
      return h("form", { id: `input-${key}`, onsubmit: (e) => {
        e.preventDefault();
        try { answer(key, JSON.parse(e.target.elements.answer.value)); } catch (x) { err.textContent = x.message; }
      } },
      h("p", {}, `${req.method || "request"}:`), h("pre", {}, JSON.stringify(params, null, 2)),
      h("label", { for: `answer-${key}` }, "Answer (JSON)"), h("textarea", { id: `answer-${key}`, name: "answer" }),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Send")));
    }),
    err);
}

async function playground(params) {
  const { tools } = await api("/v1/tools");
  const chosen = params.get("tool") || (tools[0] && tools[0].name) || "";
  const tool = tools.find((t) => t.name === chosen);
  const schema = tool?.input_schema || {};
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  const err = h("p", { class: "error", role: "alert" });
  const generic = Object.keys(props).length === 0;
  const run = async (e) => {
    e.preventDefault();
    err.textContent = "";
    let args = {};
    try {
      if (generic) {
        const raw = e.target.elements.arguments.value.trim();
        args = raw ? JSON.parse(raw) : {};
      } else {
        for (const el of e.target.querySelectorAll("[data-type]")) {
          const kind = el.dataset.type;
          if (kind === "boolean") { if (el.checked) args[el.name] = true; continue; }
          if (el.value === "") continue;
          args[el.name] = kind === "number" ? Number(el.value) : kind === "json" ? JSON.parse(el.value) : el.value;
        }
      }
    } catch (x) {
      err.textContent = `Arguments: ${x.message}`;
      return;
    }
    try {
      const t = await api("/v1/tasks", { method: "POST", body: { tool: chosen, arguments: args } });
      location.hash = `#/tasks/${t.task_id}`;
    } catch (x) {
      err.textContent = x.message;
    }
  };
  show(
    h("h1", {}, "Playground"),
    h("div", { class: "card" },
      h("label", { for: "tool" }, "Tool"),
      h("select", { id: "tool", onchange: (e) => { location.hash = `#/playground?tool=${encodeURIComponent(e.target.value)}`; } },
        tools.map((t) => h("option", { value: t.name, selected: t.name === chosen }, t.name))),
      tool?.description ? h("p", { class: "muted" }, tool.description) : null,
      h("form", { id: "run-form", onsubmit: run },
        generic
          ? h("div", {}, h("label", { for: "arguments" }, "Arguments (JSON object)"), h("textarea", { id: "arguments", name: "arguments", placeholder: "{}" }))
          : Object.entries(props).map(([n, s]) => field(n, s, required.has(n))),
        h("div", { class: "actions" }, h("button", { type: "submit", id: "run" }, "Run")), err)),
  );
  return () => {};
}

// ---- Router --------------------------------------------------------------------------

async function route() {
  stopPage();
  stopPage = () => {};
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query || "");
  const parts = (path || "/").split("/").filter(Boolean);
  const page = parts[0] || "overview";
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.getElementById("signout").hidden = !sessionStorage.getItem(KEY);
  try {
    if (page === "tasks" && parts[1]) stopPage = await task(parts[1]);
    else if (page === "workflows" && parts[1]) stopPage = await workflow(parts[1]);
    else if (page === "workflows") stopPage = await workflows();
    else if (page === "servers") stopPage = await servers();
    else if (page === "queues") stopPage = await queuesPage();
    else if (page === "peers") stopPage = await peers();
    else if (page === "audit") stopPage = await audit();
    else if (page === "tasks") stopPage = await tasks(params);
    else if (page === "playground") stopPage = await playground(params);
    else stopPage = await overview();
  } catch (e) {
    if (e instanceof NeedKey) askForKey(route);
    else show(h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, e.message));
  }
}

document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  route();
});
window.addEventListener("hashchange", route);
route();
