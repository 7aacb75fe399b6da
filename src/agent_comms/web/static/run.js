// /agents/{runId}: run header over a live, filterable, windowed timeline; the agent log apart.

import { $, bindFilterForm, el, elapsed, getJSON, query, sourceSlug } from "./common.js";
import { renderCard } from "./cards.js";
import { Feed, inTimeRange, keyForRun } from "./feed.js";

const main = $("#run-page");
const ref = main.dataset.run;
const base = `/api/agents/runs/${encodeURIComponent(ref)}`;
const FILTERS = ["agent", "kind", "since", "until"];
const TIMELINE_KINDS = "message,tool_call,tool_result,status,error";

let summary = null;
let serverSkewMs = 0;
let feed = null;
let refreshTimer = null;

function view() {
  return new URLSearchParams(location.search).get("view") === "log" || location.hash.startsWith("#l-") ? "log" : "timeline";
}

function showHeader(doc) {
  summary = doc;
  serverSkewMs = Date.parse(doc.now) - Date.now();
  const s = doc.summary;
  const first = doc.workflows[0];
  $("#run-title").textContent = doc.workflows.length === 1 ? first.workflow_name : `${ref} (${doc.workflows.length} workflows)`;
  $("#run-title").title = doc.workflows.map((w) => `${w.namespace}/${w.workflow_name} ${w.workflow_uid}`).join("\n");
  $("#run-messages").textContent = String(s.messages);
  const failures = $("#run-failures");
  failures.textContent = String(s.failures);
  failures.classList.toggle("bad", s.failures > 0);
  $("#run-agents").textContent = s.agents.join(", ");
  $("#run-namespace").textContent = s.namespaces.join(", ");
  const select = $("#f-agent");
  const chosen = select.value || new URLSearchParams(location.search).get("agent") || "";
  select.replaceChildren(el("option", { value: "", text: "all" }), ...s.agents.map((a) => el("option", { value: a, text: a })));
  select.value = chosen;
  tick();
}

function tick() {
  if (!summary) return;
  const s = summary.summary;
  const now = Date.now() + serverSkewMs;
  let status = s.status;
  if (status === "running" && now - Date.parse(s.last_at) > summary.stale_after_s * 1000) status = "stale";
  const pill = $("#run-status");
  pill.textContent = status;
  pill.dataset.status = status;
  const end = status === "running" ? now : Date.parse(s.last_at);
  $("#run-elapsed").textContent = elapsed((end - Date.parse(s.first_at)) / 1000);
}

async function refreshHeader() {
  showHeader(await getJSON(base));
}

function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    await refreshHeader().catch(() => {});
  }, 1500);
}

function markTabs() {
  const current = view();
  for (const tab of document.querySelectorAll(".tabs [data-view]")) {
    const params = new URLSearchParams(location.search);
    params.set("view", tab.dataset.view);
    tab.href = `?${params.toString()}`;
    tab.setAttribute("aria-selected", String(tab.dataset.view === current));
  }
  $("#f-kind").disabled = current === "log";
}

async function start(filters) {
  if (feed) feed.destroy();
  markTabs();
  const isLog = view() === "log";
  const kinds = isLog ? "log" : filters.kind || TIMELINE_KINDS;
  const apiFilters = { agent: filters.agent, kind: kinds, since: filters.since, until: filters.until };
  feed = new Feed({
    container: $("#feed"),
    newButton: $("#new-count"),
    url: `${base}/messages`,
    filters: apiFilters,
    keyOf: keyForRun,
    render: (row) => renderCard(row),
    matches: (row) => kinds.split(",").includes(row.kind) && inTimeRange(filters)(row),
  });
  feed.container.classList.toggle("log-view", isLog);
  feed.onLive = scheduleRefresh;
  const target = location.hash.slice(1);
  const match = /^([el])-(.+)-(\d+)$/.exec(target);
  let around = null;
  if (match && summary) {
    const src = summary.sources.find((s) => sourceSlug(s.source) === match[2]);
    if (src) around = `${src.source}:${match[3]}`;
  }
  let high;
  try {
    high = await feed.load(around);
  } catch (error) {
    feed.container.append(el("p", { class: "error", role: "alert", text: `Could not load the timeline: ${error.message}` }));
    return;
  }
  if (around && feed.highlight(target)) {
    // a permalink: stay on it
  } else {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }
  const live = { runId: ref, agent: filters.agent, kind: isLog ? "log" : filters.kind || "" };
  feed.listen(`/api/agents/events?${query(live)}`, high);
  scheduleRefresh(); // rows stored while the header loaded count too
}

async function init() {
  try {
    await refreshHeader();
  } catch (error) {
    $("#run-status").textContent = "unknown";
    $("#feed").replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
    return;
  }
  const filters = bindFilterForm($("#filters"), FILTERS, (values) => start(values));
  for (const tab of document.querySelectorAll(".tabs [data-view]")) {
    tab.addEventListener("click", (event) => {
      event.preventDefault();
      const params = new URLSearchParams(location.search);
      params.set("view", tab.dataset.view);
      history.replaceState(null, "", `${location.pathname}?${params.toString()}`);
      start(Object.fromEntries(FILTERS.map((n) => [n, params.get(n) || ""])));
    });
  }
  window.addEventListener("hashchange", () => {
    const target = location.hash.slice(1);
    if (!feed || !feed.highlight(target)) start(Object.fromEntries(FILTERS.map((n) => [n, new URLSearchParams(location.search).get(n) || ""])));
  });
  setInterval(tick, 1000);
  await start(filters);
}

init();
