/// <reference lib="dom" />
/**
 * The dashboard's page (bundled for the browser by `npm run bundle:dashboard`).
 * Fleet values are untrusted: everything from the server is set as text
 * (`textContent`, `title`), never parsed as HTML. The table renders only the
 * rows in view, so a fleet of ten thousand hosts scrolls smoothly.
 */

import {
  applyView,
  formatView,
  isPending,
  parseView,
  relativeTime,
  shortRevision,
  summarize,
  type ChangeEvent,
  type FleetHeader,
  type HistoryJson,
  type HostJson,
  type OnlyFilter,
  type SnapshotEvent,
  type SortKey,
  type ViewState,
} from "./wire.js";

const ROW_HEIGHT = 34;
/** Rows rendered beyond the visible ones, above and below. */
const OVERSCAN = 8;

type Attrs = Record<string, string>;

/** An element with attributes and children; strings become text nodes. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

const state = {
  header: undefined as FleetHeader | undefined,
  hosts: new Map<string, HostJson>(),
  connected: false,
  view: parseView(location.search),
};

// ---- layout -------------------------------------------------------------

const connection = el(
  "span",
  { class: "conn", role: "status", "data-state": "connecting" },
  "connecting…",
);
const source = el("span", { class: "source" });
const banner = el("div", { class: "banner", role: "alert", hidden: "" });
const title = el("a", { href: "/", class: "brand" }, "Ogygia fleet");
document.body.append(el("header", { class: "top" }, title, source, connection), banner);
const main = el("main", {});
document.body.append(main);

// Fleet view.
const counts = el("div", { class: "counts" });
const bars = el("div", { class: "bars", "aria-label": "Hosts per current revision" });
const filter = el("input", {
  type: "search",
  class: "filter",
  placeholder: "Filter by host or revision",
  "aria-label": "Filter by host or revision",
  autocomplete: "off",
  spellcheck: "false",
});
const shownCount = el("span", { class: "shown", "aria-live": "polite" });
const onlyChip = el("button", { type: "button", class: "chip", hidden: "" });

const COLUMNS: { key: SortKey; label: string; cls: string }[] = [
  { key: "host", label: "Host", cls: "c-host" },
  { key: "current", label: "⚡ current", cls: "c-rev" },
  { key: "booted", label: "🥾 booted", cls: "c-rev c-booted" },
  { key: "nextboot", label: "🔜 next boot", cls: "c-rev c-next" },
  { key: "online", label: "Online", cls: "c-flag" },
  { key: "reboot", label: "Reboot", cls: "c-flag" },
  { key: "updated", label: "Updated", cls: "c-updated" },
];
const headRow = el("div", { class: "row head", role: "row" });
const sortButtons = new Map<SortKey, HTMLButtonElement>();
for (const column of COLUMNS) {
  const button = el("button", { type: "button", "data-sort": column.key }, column.label);
  button.addEventListener("click", () => {
    const desc = state.view.sort === column.key ? !state.view.desc : false;
    setView({ ...state.view, sort: column.key, desc });
  });
  sortButtons.set(column.key, button);
  headRow.append(el("div", { class: `cell ${column.cls}`, role: "columnheader" }, button));
}
const spacer = el("div", { class: "spacer" });
const rowsBox = el("div", { class: "rows", role: "rowgroup" });
spacer.append(rowsBox);
const viewport = el("div", { class: "viewport", tabindex: "0" }, spacer);
const emptyNote = el("p", { class: "empty", hidden: "" });
const fleetView = el(
  "section",
  { class: "fleet" },
  el("section", { class: "summary" }, counts, bars),
  el("div", { class: "controls" }, filter, onlyChip, shownCount),
  el("div", { class: "table", role: "table", "aria-label": "Fleet" }, headRow, viewport),
  emptyNote,
);

// Host view.
const hostTitle = el("h1", { class: "host-name" });
const hostKeys = el("dl", { class: "keys" });
const historyBody = el("tbody", {});
const historyNote = el("p", { class: "muted" });
const hostView = el(
  "section",
  { class: "host-page" },
  el("a", { href: "/", class: "back" }, "← Fleet"),
  hostTitle,
  hostKeys,
  el("h2", {}, "History"),
  historyNote,
  el(
    "table",
    { class: "history" },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["Seen", "⚡ current", "🥾 booted", "🔜 next boot", "Online", "Reboot"].map((h) =>
          el("th", {}, h),
        ),
      ),
    ),
    historyBody,
  ),
);

// ---- rendering helpers ----------------------------------------------------

/** A short revision; a click (or Enter) copies the full one. */
function revisionNode(revision: string | null, changed = false): HTMLElement {
  if (revision === null) return el("span", { class: "unknown" }, "unknown");
  return el(
    "button",
    {
      type: "button",
      class: changed ? "rev differs" : "rev",
      title: revision,
      "data-copy": revision,
      "aria-label": `revision ${revision}, copy`,
    },
    shortRevision(revision),
  );
}

/** Announces short messages ("Copied …") to screen readers and sighted users alike. */
const toast = el("div", { class: "toast", role: "status", "aria-live": "polite", hidden: "" });
document.body.append(toast);
let toastTimer: number | undefined;

function announce(message: string): void {
  toast.textContent = message;
  toast.hidden = false;
  window.clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    toast.hidden = true;
  }, 1800);
}

/**
 * Puts `text` on the clipboard: the Clipboard API where the page is a secure
 * context (loopback, HTTPS), else a selected text area and the copy command,
 * which browsers still allow on a user's click over plain HTTP.
 */
async function copyText(text: string): Promise<boolean> {
  try {
    if (window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Denied (permissions, not focused): fall back to the copy command below.
  }
  const area = el("textarea", { readonly: "", class: "copy-area", "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    // Deprecated, but the only way outside secure contexts; harmless when refused.
    // eslint-disable-next-line @typescript-eslint/no-deprecated
    copied = document.execCommand("copy");
  } finally {
    area.remove();
  }
  return copied;
}

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!(target instanceof HTMLElement)) return;
  const text = target.dataset.copy ?? "";
  void copyText(text).then((copied) => {
    announce(copied ? `Copied ${text}` : `Select and copy: ${text}`);
    if (copied) target.dataset.copied = "1";
  });
});

function flagNode(value: boolean | null, yes: string, no: string, cls: string): HTMLElement {
  if (value === null) return el("span", { class: "unknown" }, "unknown");
  return el("span", { class: value ? `${cls}-yes` : `${cls}-no` }, value ? yes : no);
}

/** A tag for a host mid-update or whose last update failed (`update_state`); none once confirmed. */
function updateTag(host: HostJson): HTMLElement | null {
  const state = host.update?.state;
  if (state === undefined || state === "confirmed") return null;
  const failed = state === "rolled-back" || state === "failed" || state === "skipped";
  return el(
    "span",
    {
      class: failed ? "tag update update-failed" : "tag update",
      title: host.update?.error ?? host.update?.target ?? "",
    },
    `update: ${state}`,
  );
}

function onlineNode(host: HostJson): HTMLElement {
  if (host.online === null) return el("span", { class: "unknown" }, "unknown");
  return el(
    "span",
    { class: host.online ? "online" : "offline" },
    host.online ? "online" : "offline",
  );
}

function hostHref(host: string): string {
  return `/host/${encodeURIComponent(host)}`;
}

// ---- fleet table ----------------------------------------------------------

let shown: HostJson[] = [];
let dirty = true;
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    render();
  });
}

function setView(view: ViewState, replace = false): void {
  state.view = view;
  const url = `${location.pathname}${formatView(view)}`;
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  dirty = true;
  schedule();
}

filter.addEventListener("input", () => {
  setView({ ...state.view, q: filter.value }, true);
});
onlyChip.addEventListener("click", () => {
  setView({ ...state.view, only: null });
});
viewport.addEventListener("scroll", () => {
  renderRows();
});
window.addEventListener("resize", () => {
  renderRows();
});
window.addEventListener("popstate", () => {
  state.view = parseView(location.search);
  dirty = true;
  route();
});

function countButton(
  label: string,
  value: number,
  only: OnlyFilter | null,
  cls: string,
): HTMLElement {
  const button = el(
    "button",
    { type: "button", class: `count ${cls}`, "data-only": only ?? "all" },
    el("span", { class: "count-value" }, String(value)),
    el("span", { class: "count-label" }, label),
  );
  if (state.view.only === only) button.setAttribute("aria-pressed", "true");
  button.addEventListener("click", () => {
    // The counts are the whole fleet's: a click shows exactly those hosts.
    setView({ ...state.view, only, q: "" });
  });
  return button;
}

const ONLY_LABELS: Record<OnlyFilter, string> = {
  offline: "offline only",
  reboot: "reboot required only",
  pending: "pending only",
};

function renderSummary(): void {
  const summary = summarize(state.hosts.values());
  counts.replaceChildren(
    countButton("hosts", summary.total, null, "total"),
    countButton("offline", summary.offline, "offline", "bad"),
    countButton("reboot required", summary.reboot, "reboot", "warn"),
    countButton("pending", summary.pending, "pending", "info"),
  );
  const top = summary.revisions.slice(0, 8);
  const max = top[0]?.hosts ?? 1;
  bars.replaceChildren(
    el("h2", {}, "Hosts per current revision"),
    ...top.map(({ revision, hosts }) => {
      const fill = el("span", { class: "bar-fill" });
      fill.style.width = `${Math.max(2, (hosts / max) * 100)}%`;
      const button = el(
        "button",
        { type: "button", class: "bar", title: revision ?? "unknown" },
        el("span", { class: "bar-label" }, revision === null ? "unknown" : shortRevision(revision)),
        el("span", { class: "bar-track" }, fill),
        el("span", { class: "bar-count" }, String(hosts)),
      );
      if (revision === null) button.disabled = true;
      else
        button.addEventListener("click", () => {
          setView({ ...state.view, q: revision, only: null });
        });
      return button;
    }),
    ...(summary.revisions.length > top.length
      ? [el("p", { class: "muted" }, `and ${summary.revisions.length - top.length} more revisions`)]
      : []),
  );
}

function renderRow(host: HostJson, now: number): HTMLElement {
  const row = el("div", { class: "row", role: "row", "data-host": host.host });
  if (host.online === false) row.classList.add("is-offline");
  const link = el("a", { href: hostHref(host.host), title: host.host }, host.displayName);
  const nameCell = el("div", { class: "cell c-host", role: "cell" }, link);
  if (host.local) nameCell.append(el("span", { class: "tag" }, "this host"));
  const update = updateTag(host);
  if (update) nameCell.append(update);
  row.append(
    nameCell,
    el("div", { class: "cell c-rev", role: "cell" }, revisionNode(host.current)),
    el(
      "div",
      { class: "cell c-rev c-booted", role: "cell" },
      revisionNode(host.booted, host.booted !== null && host.booted !== host.current),
    ),
    el(
      "div",
      { class: "cell c-rev c-next", role: "cell" },
      revisionNode(host.nextboot, host.nextboot !== null && host.nextboot !== host.current),
    ),
    el("div", { class: "cell c-flag", role: "cell" }, onlineNode(host)),
    el(
      "div",
      { class: "cell c-flag", role: "cell" },
      flagNode(host.rebootRequired, "required", "no", "reboot"),
    ),
    el(
      "div",
      { class: "cell c-updated", role: "cell", title: host.updatedAt ?? "" },
      relativeTime(host.updatedAt, now),
    ),
  );
  return row;
}

function renderRows(): void {
  const height = viewport.clientHeight || 600;
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(
    shown.length,
    Math.ceil((viewport.scrollTop + height) / ROW_HEIGHT) + OVERSCAN,
  );
  const now = Date.now();
  const rows: HTMLElement[] = [];
  for (let i = first; i < last; i += 1) {
    const host = shown[i];
    if (host !== undefined) rows.push(renderRow(host, now));
  }
  rowsBox.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
  // Rows are made anew at each render: keep the keyboard's place (host and
  // control) across live updates and scrolling.
  const focused = focusedControl();
  rowsBox.replaceChildren(...rows);
  if (focused !== undefined) focusControl(focused.host, focused.control);
}

/** The row control (host link, a revision) that has the focus, if any. */
function focusedControl(): { host: string; control: number } | undefined {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || !rowsBox.contains(active)) return undefined;
  const row = active.closest<HTMLElement>(".row");
  const host = row?.dataset.host;
  if (row === null || host === undefined) return undefined;
  return { host, control: rowControls(row).indexOf(active) };
}

function rowControls(row: Element): HTMLElement[] {
  return Array.from(row.querySelectorAll<HTMLElement>("a, button"));
}

/** Focuses control number `control` of `host`'s row, if the row is rendered. */
function focusControl(host: string, control: number): boolean {
  for (const row of Array.from(rowsBox.children)) {
    if (!(row instanceof HTMLElement) || row.dataset.host !== host) continue;
    const controls = rowControls(row);
    const target = controls[Math.min(Math.max(control, 0), controls.length - 1)];
    target?.focus({ preventScroll: true });
    return target !== undefined;
  }
  return false;
}

/**
 * Arrow keys move between rows (Up, Down, Page Up, Page Down, Home, End)
 * and between a row's controls (Left, Right); the table scrolls so that the
 * focused row stays in view, even among rows not yet rendered.
 */
rowsBox.addEventListener("keydown", (event) => {
  const focused = focusedControl();
  if (focused === undefined) return;
  const index = shown.findIndex((h) => h.host === focused.host);
  if (index < 0) return;
  const page = Math.max(1, Math.floor((viewport.clientHeight || 600) / ROW_HEIGHT) - 1);
  const moves: Record<string, number> = {
    ArrowDown: 1,
    ArrowUp: -1,
    PageDown: page,
    PageUp: -page,
    Home: -index,
    End: shown.length - 1 - index,
  };
  let control = focused.control;
  let next = index;
  if (event.key in moves)
    next = Math.min(shown.length - 1, Math.max(0, index + (moves[event.key] ?? 0)));
  else if (event.key === "ArrowRight") control += 1;
  else if (event.key === "ArrowLeft") control -= 1;
  else return;
  event.preventDefault();
  const host = shown[next]?.host;
  if (host === undefined) return;
  const top = next * ROW_HEIGHT;
  const height = viewport.clientHeight || 600;
  if (top < viewport.scrollTop) viewport.scrollTop = top;
  else if (top + ROW_HEIGHT > viewport.scrollTop + height)
    viewport.scrollTop = top + ROW_HEIGHT - height;
  renderRows();
  focusControl(host, control);
});

function renderFleet(): void {
  if (dirty) {
    shown = applyView(state.hosts.values(), state.view);
    dirty = false;
  }
  if (filter.value !== state.view.q) filter.value = state.view.q;
  for (const [key, button] of sortButtons) {
    const cell = button.parentElement;
    const active = state.view.sort === key;
    cell?.setAttribute(
      "aria-sort",
      active ? (state.view.desc ? "descending" : "ascending") : "none",
    );
    button.dataset.active = active ? (state.view.desc ? "desc" : "asc") : "";
  }
  if (state.view.only === null) {
    onlyChip.hidden = true;
  } else {
    onlyChip.hidden = false;
    onlyChip.textContent = `${ONLY_LABELS[state.view.only]} ✕`;
  }
  renderSummary();
  shownCount.textContent =
    shown.length === state.hosts.size
      ? `${shown.length} hosts`
      : `${shown.length} of ${state.hosts.size} hosts`;
  spacer.style.height = `${shown.length * ROW_HEIGHT}px`;
  emptyNote.hidden = shown.length > 0 || state.header === undefined;
  emptyNote.textContent =
    state.hosts.size === 0 ? "No host has published yet." : "No host matches the filter.";
  renderRows();
}

// ---- host page ------------------------------------------------------------

let historyFor: string | undefined;
/** The host's entry when its history was last fetched: a new entry means a new change. */
let historySeen: HostJson | null | undefined;

function hostFromPath(): string | undefined {
  const match = /^\/host\/(.+)$/.exec(location.pathname);
  if (match?.[1] === undefined) return undefined;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
}

function keyRow(label: string, value: Node | string): Node[] {
  return [el("dt", {}, label), el("dd", {}, value)];
}

function renderHost(name: string): void {
  hostTitle.textContent = name;
  document.title = `${name} · Ogygia fleet`;
  const host = state.hosts.get(name);
  if (host === undefined) {
    hostKeys.replaceChildren(
      ...keyRow("State", state.header === undefined ? "loading…" : "not in the fleet now"),
    );
  } else {
    const full = (revision: string | null): Node =>
      revision === null
        ? el("span", { class: "unknown" }, "unknown")
        : el(
            "span",
            { class: "full-rev" },
            el("code", {}, revision),
            el(
              "button",
              { type: "button", class: "copy", "data-copy": revision, "aria-label": "copy" },
              "copy",
            ),
          );
    hostKeys.replaceChildren(
      ...keyRow("Host", host.host),
      ...keyRow("⚡ current", full(host.current)),
      ...keyRow("🥾 booted", full(host.booted)),
      ...keyRow("🔜 next boot", full(host.nextboot)),
      ...keyRow("Online", onlineNode(host)),
      ...keyRow("Reboot required", flagNode(host.rebootRequired, "yes", "no", "reboot")),
      ...keyRow(
        "Update",
        host.update === undefined
          ? "none"
          : `${host.update.state}${host.update.target === null ? "" : ` → ${host.update.target}`}` +
              (host.update.error === null ? "" : ` (${host.update.error})`),
      ),
      ...keyRow(
        "Pending",
        isPending(host) ? "yes (next boot or booted differs from current)" : "no",
      ),
      ...keyRow(
        "Updated",
        host.updatedAt === null
          ? "unknown"
          : `${relativeTime(host.updatedAt, Date.now())} (${host.updatedAt})`,
      ),
    );
  }
  if (historyFor !== name || historySeen !== (host ?? null)) {
    historyFor = name;
    historySeen = host ?? null;
    void loadHistory(name);
  }
}

async function loadHistory(name: string): Promise<void> {
  try {
    const res = await fetch(`/api/hosts/${encodeURIComponent(name)}/history`, {
      cache: "no-store",
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const answer = (await res.json()) as HistoryJson;
    if (historyFor !== name) return;
    historyNote.textContent =
      answer.entries.length === 0
        ? "The dashboard has not seen this host change yet."
        : `${answer.entries.length} changes seen, newest first.`;
    historyBody.replaceChildren(
      ...answer.entries
        .slice()
        .reverse()
        .map((entry) =>
          el(
            "tr",
            {},
            el("td", { title: entry.at }, new Date(entry.at).toLocaleString()),
            el("td", {}, revisionNode(entry.current)),
            el("td", {}, revisionNode(entry.booted)),
            el("td", {}, revisionNode(entry.nextboot)),
            el("td", {}, flagNode(entry.online, "online", "offline", "online")),
            el("td", {}, flagNode(entry.rebootRequired, "required", "no", "reboot")),
          ),
        ),
    );
  } catch (err) {
    historyNote.textContent = `Could not load the history: ${(err as Error).message}`;
  }
}

// ---- routing and live updates ---------------------------------------------

function render(): void {
  const host = hostFromPath();
  if (host === undefined) {
    document.title = "Ogygia fleet";
    renderFleet();
  } else {
    renderHost(host);
  }
  renderStatus();
}

function route(): void {
  const host = hostFromPath();
  main.replaceChildren(host === undefined ? fleetView : hostView);
  if (host === undefined) state.view = parseView(location.search);
  dirty = true;
  schedule();
}

// Links inside the page navigate without reloading (the live stream stays).
document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target.closest("a") : null;
  if (target === null || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(target.href, location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  route();
});

function renderStatus(): void {
  const header = state.header;
  source.textContent =
    header === undefined ? "" : `${header.mode} · ${header.namespace ?? "local only"}`;
  const messages: string[] = [];
  if (!state.connected) messages.push("Disconnected from the dashboard server, retrying…");
  if (header?.error != null) {
    messages.push(
      `Cannot read ${header.mode}: ${header.error} Showing the fleet as last seen; retrying.`,
    );
  }
  banner.hidden = messages.length === 0;
  banner.replaceChildren(...messages.map((m) => el("p", {}, m)));
  const live = state.connected && header?.error == null;
  connection.dataset.state = state.connected ? (live ? "live" : "backend") : "disconnected";
  connection.textContent = state.connected
    ? live
      ? "live"
      : "backend unreachable"
    : "disconnected";
}

function applySnapshot(event: SnapshotEvent | { fleet: null }): void {
  state.hosts = new Map();
  if (event.fleet === null) {
    state.header = undefined;
  } else {
    const { hosts, ...header } = event.fleet;
    state.header = header;
    for (const host of hosts) state.hosts.set(host.host, host);
  }
  dirty = true;
  schedule();
}

function applyChange(event: ChangeEvent): void {
  state.header = event.header;
  for (const host of event.upserts) state.hosts.set(host.host, host);
  for (const name of event.removed) state.hosts.delete(name);
  dirty = true;
  schedule();
}

function connect(): void {
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => {
    state.connected = true;
    schedule();
  });
  events.addEventListener("error", () => {
    state.connected = false;
    schedule();
  });
  events.addEventListener("snapshot", (message) => {
    applySnapshot(JSON.parse((message as MessageEvent<string>).data) as SnapshotEvent);
  });
  events.addEventListener("change", (message) => {
    applyChange(JSON.parse((message as MessageEvent<string>).data) as ChangeEvent);
  });
}

// Relative times age: redraw them now and then.
setInterval(() => {
  schedule();
}, 15_000);

route();
connect();
