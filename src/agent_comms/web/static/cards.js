// Typed cards for timeline events. Everything is built as text nodes; the one exception is
// `row.html`, which the server rendered from markdown with raw HTML disabled and links checked.

import { anchorOf, clockTime, el, sourceSlug, stripAnsi } from "./common.js";

const HEAD_LINES = 12;
const TAIL_LINES = 8;

const COMMAND_RESULT = /^Exit code (-?\d+)[^\n]*\n\n(`{3,})[^\n]*\n([\s\S]*?)\n\2\s*$/;
const DIFF_BLOCK = /(`{3,})diff\n([\s\S]*?)\n\1/g;

function isFailed(row) {
  const tool = row.tool || {};
  if (row.kind !== "tool_result") return false;
  if (tool.status === "failed") return true;
  return typeof tool.exit_code === "number" && tool.exit_code !== 0;
}

// Long output: head and tail, with "+N lines" in between to expand in place.
export function outputBlock(text) {
  const clean = stripAnsi(text);
  const lines = clean.split("\n");
  const wrap = el("div", { class: "output" });
  if (lines.length <= HEAD_LINES + TAIL_LINES + 4) {
    wrap.append(el("pre", { text: clean }));
    return wrap;
  }
  const hidden = lines.length - HEAD_LINES - TAIL_LINES;
  const head = el("pre", { class: "head", text: lines.slice(0, HEAD_LINES).join("\n") });
  const tail = el("pre", { class: "tail", text: lines.slice(-TAIL_LINES).join("\n") });
  const expand = el("button", { class: "expand", type: "button", text: `+${hidden} lines` });
  expand.addEventListener("click", () => {
    wrap.replaceChildren(el("pre", { class: "full", text: clean }));
  });
  wrap.append(head, expand, tail);
  wrap.classList.add("collapsed");
  return wrap;
}

function markdown(row) {
  const box = el("div", { class: "markdown" });
  if (typeof row.html === "string") box.innerHTML = row.html; // server-rendered, safe by construction
  else box.textContent = stripAnsi(row.content);
  return box;
}

function diffView(content) {
  const blocks = [...content.matchAll(DIFF_BLOCK)].map((m) => m[2]);
  const title = stripAnsi(content.split("\n", 1)[0]);
  let added = 0;
  let removed = 0;
  const pre = el("pre", { class: "diff" });
  for (const block of blocks) {
    for (const line of block.split("\n")) {
      let cls = "ctx";
      if (line.startsWith("+++") || line.startsWith("---")) cls = "file";
      else if (line.startsWith("+")) {
        cls = "add";
        added++;
      } else if (line.startsWith("-")) {
        cls = "del";
        removed++;
      } else if (line.startsWith("@@")) cls = "hunk";
      pre.append(el("span", { class: cls, text: `${stripAnsi(line)}\n` }));
    }
  }
  const counts = el(
    "span",
    { class: "counts" },
    el("span", { class: "added", text: `+${added}` }),
    " ",
    el("span", { class: "removed", text: `−${removed}` }),
  );
  const body = el("div", { class: "file-change" }, el("div", { class: "title" }, title, " ", counts));
  if (blocks.length) body.append(pre);
  return body;
}

function commandOf(row) {
  const args = (row.tool && row.tool.arguments) || {};
  const cmd = args.command ?? (row.attrs && row.attrs.command);
  return Array.isArray(cmd) ? cmd.join(" ") : cmd ? String(cmd) : "";
}

function commandResult(row) {
  const content = row.content || "";
  const match = COMMAND_RESULT.exec(content);
  const tool = row.tool || {};
  const exit = typeof tool.exit_code === "number" ? tool.exit_code : match ? Number(match[1]) : null;
  const failed = isFailed(row);
  const badge = el("span", {
    class: `exit ${failed ? "failed" : "ok"}`,
    text: exit === null ? tool.status || "done" : `exit ${exit}`,
  });
  const command = commandOf(row);
  const box = el("div", { class: "command" }, el("div", { class: "cmdline" }, el("code", { text: `$ ${command}` }), " ", badge));
  const output = match ? match[3] : content.replace(/^Exit code[^\n]*\n*/, "");
  if (output.trim()) box.append(outputBlock(output));
  return box;
}

function chip(icon, text, extra) {
  return el("div", { class: "chip" }, el("span", { class: "icon", text: icon }), el("code", { text }), extra || null);
}

function toolCall(row) {
  const tool = row.tool || {};
  const type = (row.attrs && row.attrs.item_type) || tool.name;
  if (type === "command_execution") return chip("$", commandOf(row), el("span", { class: "pending", text: "running…" }));
  if (type === "file_change") return chip("✎", stripAnsi(row.content));
  if (type === "web_search") return chip("⌕", stripAnsi(row.content).replace(/`/g, ""));
  if (type === "mcp_tool_call") return chip("⚙", tool.name || "mcp", null);
  return chip("→", stripAnsi(row.content).split("\n", 1)[0]);
}

function toolResult(row) {
  const tool = row.tool || {};
  const type = (row.attrs && row.attrs.item_type) || tool.name;
  if (type === "command_execution") return commandResult(row);
  if (type === "file_change") return diffView(row.content || "");
  const title = type === "mcp_tool_call" ? `⚙ ${tool.name || "mcp"}` : type === "web_search" ? "⌕ web search" : tool.name || "result";
  return el("div", { class: "tool-result" }, el("div", { class: "title", text: title }), outputBlock(row.content || ""));
}

function body(row) {
  const type = row.attrs && row.attrs.item_type;
  switch (row.kind) {
    case "message":
      if (type === "reasoning") {
        const preview = stripAnsi(row.content).replace(/\*\*/g, "").split("\n", 1)[0].slice(0, 120);
        return el("details", { class: "reasoning" }, el("summary", {}, el("span", { class: "label", text: "Reasoning" }), ` ${preview}`), markdown(row));
      }
      return markdown(row);
    case "tool_call":
      return toolCall(row);
    case "tool_result":
      return toolResult(row);
    case "error":
      return el("pre", { class: "error-text", text: stripAnsi(row.content) });
    case "log":
      return el("span", { class: "logtext", text: stripAnsi(row.content) });
    default:
      return el("pre", { class: "status-text", text: stripAnsi(row.content) });
  }
}

function kindLabel(row) {
  const type = row.attrs && row.attrs.item_type;
  if (row.kind === "message") return type === "reasoning" ? "reasoning" : "agent";
  if (type === "command_execution") return row.kind === "tool_call" ? "command" : "output";
  if (type === "file_change") return "file change";
  if (type === "mcp_tool_call") return "mcp";
  if (type === "web_search") return "web search";
  return row.kind.replace("_", " ");
}

// opts.runLink: show which run the event came from (the general channel).
export function renderCard(row, opts = {}) {
  const anchor = anchorOf(row);
  const type = (row.attrs && row.attrs.item_type) || "";
  const eventType = (row.attrs && row.attrs.event_type) || "";
  const classes = ["card", `kind-${row.kind}`];
  if (type) classes.push(`item-${type}`);
  if (isFailed(row)) classes.push("failed");
  if (eventType === "turn.completed") classes.push("turn-ok");
  if (eventType === "turn.failed") classes.push("turn-failed");
  const card = el("article", { class: classes.join(" "), id: opts.runLink ? `g-${row.id}` : anchor, dataset: { id: row.id } });
  const permalink = opts.runLink
    ? el("a", { class: "permalink", href: `/agents/${encodeURIComponent(row.workflow_uid)}#${anchor}`, text: `#${row.line}`, title: "Open in its run" })
    : el("a", { class: "permalink", href: `#${anchor}`, text: `#${row.line}`, title: `${row.source} line ${row.line}` });
  if (row.kind === "log" && !opts.runLink) {
    card.append(permalink, body(row));
    return card;
  }
  const meta = el(
    "header",
    { class: "meta" },
    permalink,
    el("span", { class: "agent", text: row.agent_id }),
    el("span", { class: `badge badge-${row.kind}`, text: kindLabel(row) }),
    el("time", { datetime: row.timestamp, text: clockTime(row.timestamp), title: row.timestamp }),
  );
  if (opts.runLink) {
    meta.append(
      el("a", { class: "run-link", href: `/agents/${encodeURIComponent(row.workflow_uid)}`, text: row.workflow_name, title: `${row.workflow_namespace}/${row.workflow_name} (${row.workflow_uid}) · ${sourceSlug(row.source)}` }),
    );
  }
  card.append(meta, body(row));
  return card;
}
