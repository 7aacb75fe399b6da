// Shared helpers of the pages: DOM building (text only, never innerHTML), fetch, time, URL state.

export const $ = (selector, root = document) => root.querySelector(selector);

// el("a", {class: "x", href: "/y", text: "z"}, child...): text goes in as text, never as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;
export const stripAnsi = (text) => (text && text.includes("\x1b") ? text.replace(ANSI, "") : text || "");

export class HttpError extends Error {}

export async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search + location.hash)}`);
    throw new HttpError("authentication required");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new HttpError(body.error || `${response.status} ${response.statusText}`);
  return body;
}

export function setConnection(state, title) {
  const dot = $("#conn");
  if (!dot) return;
  dot.dataset.state = state;
  dot.title = title || state;
}

export function pad(n) {
  return String(n).padStart(2, "0");
}

export function clockTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clockTime(iso)}`;
}

export function elapsed(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${pad(m % 60)}m`;
}

export function ago(iso, now = Date.now()) {
  return `${elapsed((now - new Date(iso).getTime()) / 1000)} ago`;
}

// ".codex-implementation-events.jsonl" -> "implementation-events": short, stable anchors.
export function sourceSlug(source) {
  return source.replace(/^\./, "").replace(/^codex-/, "").replace(/\.jsonl$/, "").replace(/[^A-Za-z0-9_.-]/g, "_");
}

export function anchorOf(row) {
  return `${row.kind === "log" ? "l" : "e"}-${sourceSlug(row.source)}-${row.line}`;
}

// Cursors are base64url JSON of the row's position in the timeline order (as the API makes them).
export function cursorOf(key) {
  const bytes = new TextEncoder().encode(JSON.stringify(key));
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function compareKeys(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] < b[i]) return -1;
    if (a[i] > b[i]) return 1;
  }
  return 0;
}

// Filters live in the URL (?agent=&kind=&since=&until=), so a filtered view can be shared.
export function readFilters(names) {
  const params = new URLSearchParams(location.search);
  const out = {};
  for (const name of names) out[name] = params.get(name) || "";
  return out;
}

export function writeFilters(values) {
  const params = new URLSearchParams(location.search);
  for (const [name, value] of Object.entries(values)) {
    if (value) params.set(name, value);
    else params.delete(name);
  }
  const query = params.toString();
  history.replaceState(null, "", `${location.pathname}${query ? `?${query}` : ""}${location.hash}`);
}

// <input type=datetime-local> speaks local time without a zone; the URL and API speak UTC.
export function localInputToIso(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

export function isoToLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${clockTime(iso)}`;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  return q.toString();
}

export function bindFilterForm(form, names, onApply) {
  const current = readFilters(names);
  for (const name of names) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    input.value = input.type === "datetime-local" ? isoToLocalInput(current[name]) : current[name];
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = {};
    for (const name of names) {
      const input = form.elements.namedItem(name);
      values[name] = input.type === "datetime-local" ? localInputToIso(input.value) : input.value.trim();
    }
    writeFilters(values);
    onApply(values);
  });
  form.addEventListener("reset", () => {
    const values = Object.fromEntries(names.map((n) => [n, ""]));
    writeFilters(values);
    setTimeout(() => onApply(values), 0);
  });
  return current;
}
