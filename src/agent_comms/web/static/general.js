// /agents/general: the global channel, live, each message with the run it came from.

import { $, bindFilterForm, query } from "./common.js";
import { renderCard } from "./cards.js";
import { Feed, inTimeRange, keyForGeneral } from "./feed.js";

const FILTERS = ["agent", "kind", "since", "until"];
let feed = null;

async function start(filters) {
  if (feed) feed.destroy();
  const kinds = filters.kind ? filters.kind.split(",") : null;
  feed = new Feed({
    container: $("#feed"),
    newButton: $("#new-count"),
    url: "/api/agents/general/messages",
    filters,
    keyOf: keyForGeneral,
    render: (row) => renderCard(row, { runLink: true }),
    matches: (row) => (!kinds || kinds.includes(row.kind)) && inTimeRange(filters)(row),
  });
  const high = await feed.load(null);
  window.scrollTo(0, document.documentElement.scrollHeight);
  const live = { channel: "general", agent: filters.agent, kind: filters.kind };
  feed.listen(`/api/agents/events?${query(live)}`, high);
}

start(bindFilterForm($("#filters"), FILTERS, (values) => start(values)));
