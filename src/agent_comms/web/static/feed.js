// A windowed timeline: pages from the JSON API, live rows from SSE, follow mode, "N new",
// permalinks. At most MAX_DOM cards are in the DOM; earlier ones come back with "Load earlier",
// so a 50,000-event run stays as light as a small one.

import { $, compareKeys, cursorOf, el, getJSON, query, setConnection } from "./common.js";

const PAGE = 300;
const MAX_DOM = 1500;
const BOTTOM_SLACK_PX = 80;

export class Feed {
  // opts: container, newButton, url (messages endpoint), keyOf(row), render(row), filters {..}, matches(row)
  constructor(opts) {
    Object.assign(this, opts);
    this.rows = []; // [{key, id, node}] in timeline order
    this.ids = new Set();
    this.following = true;
    this.unseen = 0;
    this.moreBefore = false;
    this.earlier = el("button", { class: "load-earlier", type: "button", text: "Load earlier", hidden: true });
    this.list = el("div", { class: "events" });
    this.empty = el("p", { class: "empty", text: "Nothing here yet: events appear as the agent writes them.", hidden: true });
    this.container.replaceChildren(this.earlier, this.list, this.empty);
    this.earlier.addEventListener("click", () => this.loadEarlier());
    this.newButton.addEventListener("click", () => this.jumpToEnd());
    this.onScroll = () => {
      this.following = this.atBottom();
      if (this.following) this.resetUnseen();
    };
    window.addEventListener("scroll", this.onScroll, { passive: true });
  }

  destroy() {
    window.removeEventListener("scroll", this.onScroll);
    if (this.source) this.source.close();
  }

  atBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - BOTTOM_SLACK_PX;
  }

  async fetchPage(extra) {
    return getJSON(`${this.url}?${query({ ...this.filters, limit: PAGE, ...extra })}`);
  }

  // The newest page (or the page around a permalink); returns `high`, where live resumes.
  async load(around) {
    const page = around ? await this.fetchPage({ around }) : await this.fetchPage({ tail: 1 });
    this.moreBefore = page.more_before;
    this.moreAfterAround = around ? page.more_after : false;
    for (const row of page.messages) this.insert(row);
    this.updateChrome();
    return page.high;
  }

  async loadEarlier() {
    if (!this.rows.length) return;
    this.earlier.disabled = true;
    try {
      const page = await this.fetchPage({ before: cursorOf(this.rows[0].key) });
      this.moreBefore = page.more_before;
      for (const row of page.messages.slice().reverse()) this.insert(row);
    } finally {
      this.earlier.disabled = false;
      this.updateChrome();
    }
  }

  updateChrome() {
    this.earlier.hidden = !this.moreBefore;
    this.empty.hidden = this.rows.length > 0;
  }

  // Place a row by its key; a row before the loaded window is left for "Load earlier".
  insert(row) {
    if (this.ids.has(row.id)) return false;
    const key = this.keyOf(row);
    const n = this.rows.length;
    if (n && this.moreBefore && compareKeys(key, this.rows[0].key) < 0) return false;
    const node = this.render(row);
    let at = n;
    while (at > 0 && compareKeys(this.rows[at - 1].key, key) > 0) at--;
    const next = this.rows[at];
    this.list.insertBefore(node, next ? next.node : null);
    this.rows.splice(at, 0, { key, id: row.id, node });
    this.ids.add(row.id);
    return true;
  }

  // A live row: appended (or placed), then either followed or counted as "N new".
  add(row) {
    if (this.matches && !this.matches(row)) return;
    if (this.moreAfterAround) return; // a permalink view not at the end: live rows arrive on "Jump to end"
    const wasFollowing = this.following && this.atBottom();
    if (!this.insert(row)) return;
    this.trim(wasFollowing);
    this.updateChrome();
    if (wasFollowing) {
      this.scheduleScroll();
    } else {
      this.unseen++;
      this.newButton.textContent = `${this.unseen} new ↓`;
      this.newButton.hidden = false;
    }
  }

  trim(following) {
    if (!following || this.rows.length <= MAX_DOM) return;
    const drop = this.rows.splice(0, this.rows.length - MAX_DOM);
    for (const r of drop) {
      r.node.remove();
      this.ids.delete(r.id);
    }
    this.moreBefore = true;
  }

  scheduleScroll() {
    if (this.scrollPending) return;
    this.scrollPending = true;
    requestAnimationFrame(() => {
      this.scrollPending = false;
      window.scrollTo(0, document.documentElement.scrollHeight);
      this.following = true;
    });
  }

  resetUnseen() {
    this.unseen = 0;
    this.newButton.hidden = true;
  }

  jumpToEnd() {
    if (this.moreAfterAround) {
      location.hash = "";
      location.reload();
      return;
    }
    this.resetUnseen();
    window.scrollTo(0, document.documentElement.scrollHeight);
    this.following = true;
  }

  highlight(anchor) {
    const node = document.getElementById(anchor);
    if (!node) return false;
    for (const old of this.list.querySelectorAll(".highlight")) old.classList.remove("highlight");
    node.classList.add("highlight");
    node.scrollIntoView({ block: "center" });
    this.following = false;
    return true;
  }

  // SSE from `high`: no gap (the server resumes by cursor), no repeat (ids are deduplicated).
  listen(url, high) {
    const sep = url.includes("?") ? "&" : "?";
    const source = new EventSource(`${url}${sep}lastEventId=${high}`);
    this.source = source;
    setConnection("connecting");
    source.onopen = () => setConnection("live", "Live: new events appear as they are stored");
    source.onerror = () => setConnection(source.readyState === EventSource.CLOSED ? "error" : "connecting", "Reconnecting…");
    source.onmessage = (event) => {
      let row;
      try {
        row = JSON.parse(event.data);
      } catch {
        return;
      }
      this.add(row);
      if (this.onLive) this.onLive(row);
    };
    return source;
  }
}

export function keyForRun(row) {
  return [row.workflow_uid, row.source, row.line, row.id];
}

export function keyForGeneral(row) {
  return [row.timestamp, row.workflow_uid, row.source, row.line, row.id];
}

export function inTimeRange(filters) {
  const since = filters.since ? Date.parse(filters.since) : null;
  const until = filters.until ? Date.parse(filters.until) : null;
  return (row) => {
    const t = Date.parse(row.timestamp);
    return (since === null || t >= since) && (until === null || t < until);
  };
}

export { $ };
