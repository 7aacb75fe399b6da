// /agents: runs, newest activity first, live (refreshed when the server says runs changed).

import { $, ago, bindFilterForm, dateTime, el, elapsed, getJSON, query, setConnection } from "./common.js";

const body = $("#runs-body");
const more = $("#more");
const runs = new Map(); // workflow_uid -> run
let filters = {};
let next = null;
let skewMs = 0;
let staleAfterS = 600;
let refreshTimer = null;

function statusOf(run, now) {
  if (run.status === "running" && now - Date.parse(run.last_at) > staleAfterS * 1000) return "stale";
  return run.status;
}

function row(run) {
  const link = el("a", { href: run.links.page, text: run.workflow_name, title: run.workflow_uid });
  const tr = el(
    "tr",
    { dataset: { uid: run.workflow_uid } },
    el("td", {}, el("span", { class: "status" })),
    el("td", { class: "workflow" }, link, run.run_id ? el("span", { class: "sub", text: `run ${run.run_id}` }) : null),
    el("td", { text: run.namespace }),
    el("td", { text: run.agents.join(", ") }),
    el("td", { class: "num", text: String(run.messages) }),
    el("td", { class: `num${run.failures ? " bad" : ""}`, text: String(run.failures) }),
    el("td", { text: dateTime(run.first_at) }),
    el("td", { class: "num elapsed" }),
    el("td", { class: "ago" }),
  );
  tr.run = run;
  return tr;
}

// Status, elapsed time and "ago" move with the clock; the rest changes only with the data.
function tick() {
  const now = Date.now() + skewMs;
  for (const tr of body.rows) {
    const run = tr.run;
    if (!run) continue;
    const status = statusOf(run, now);
    const pill = tr.querySelector(".status");
    pill.textContent = status;
    pill.dataset.status = status;
    tr.dataset.status = status;
    const end = status === "running" ? now : Date.parse(run.last_at);
    tr.querySelector(".elapsed").textContent = elapsed((end - Date.parse(run.first_at)) / 1000);
    tr.querySelector(".ago").textContent = ago(run.last_at, now);
  }
}

function draw() {
  const sorted = [...runs.values()].sort((a, b) => (a.last_at < b.last_at ? 1 : a.last_at > b.last_at ? -1 : a.workflow_uid < b.workflow_uid ? 1 : -1));
  body.replaceChildren(...sorted.map(row));
  $("#empty").hidden = runs.size > 0;
  more.hidden = !next;
  tick();
}

function absorb(doc) {
  skewMs = Date.parse(doc.now) - Date.now();
  staleAfterS = doc.stale_after_s;
  for (const run of doc.runs) runs.set(run.workflow_uid, run);
}

async function load(reset) {
  if (reset) {
    runs.clear();
    next = null;
  }
  const doc = await getJSON(`/api/agents/runs?${query({ namespace: filters.namespace, limit: 50 })}`);
  absorb(doc);
  if (reset) next = doc.next;
  draw();
}

async function loadMore() {
  if (!next) return;
  const doc = await getJSON(`/api/agents/runs?${query({ namespace: filters.namespace, limit: 50, cursor: next })}`);
  absorb(doc);
  next = doc.next;
  draw();
}

function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    load(false).catch(() => setConnection("error", "Could not refresh the runs"));
  }, 300);
}

function listen() {
  const source = new EventSource("/api/agents/run-updates");
  setConnection("connecting");
  source.onopen = () => setConnection("live", "Live: runs update as their messages are stored");
  source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "error" : "connecting", "Reconnecting…");
  source.addEventListener("runs", refreshSoon);
}

filters = bindFilterForm($("#filters"), ["namespace"], (values) => {
  filters = values;
  load(true);
});
more.addEventListener("click", loadMore);
setInterval(tick, 1000);
load(true).then(listen, (error) => {
  body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "error", text: error.message })));
});
