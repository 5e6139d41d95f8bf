/**
 * What the dashboard's server sends its page, and the pure view logic both
 * sides share (filter, sort, summary). No Node or DOM APIs here: the page's
 * bundle includes this file.
 */

/** One host as `ogygia status --json` shows it. */
export interface HostJson {
  host: string;
  displayName: string;
  local: boolean;
  current: string | null;
  booted: string | null;
  nextboot: string | null;
  online: boolean | null;
  rebootRequired: boolean | null;
  updatedAt: string | null;
  /** The host's update (`ogygia update`), when its agent published one. */
  update?: HostUpdateJson;
}

/** A host's update as `ogygia status --json` shows it. */
export interface HostUpdateJson {
  state: string;
  target: string | null;
  error: string | null;
  changedAt: string | null;
}

/** The `ogygia status --json` document (also `GET /api/fleet`). */
export interface FleetJson {
  mode: string;
  configPath: string | null;
  namespace: string | null;
  error: string | null;
  nothingPublished: boolean;
  hosts: HostJson[];
  warnings: string[];
}

/** The report's fields other than its hosts. */
export type FleetHeader = Omit<FleetJson, "hosts">;

/** SSE `snapshot`: everything. */
export interface SnapshotEvent {
  fleet: FleetJson;
}

/** SSE `change`: hosts added or changed, hosts gone, and the new header. */
export interface ChangeEvent {
  header: FleetHeader;
  upserts: HostJson[];
  removed: string[];
}

/** One recorded change of a host's states (`GET /api/hosts/<host>/history`). */
export interface HistoryEntry {
  /** When the dashboard saw it, RFC 3339. */
  at: string;
  current: string | null;
  booted: string | null;
  nextboot: string | null;
  online: boolean | null;
  rebootRequired: boolean | null;
}

export interface HistoryJson {
  host: string;
  entries: HistoryEntry[];
}

/** Characters of a revision shown in the table (as `ogygia status`). */
export const SHORT_REVISION = 12;

export const SORT_KEYS = [
  "host",
  "current",
  "booted",
  "nextboot",
  "online",
  "reboot",
  "updated",
] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export const ONLY_FILTERS = ["offline", "reboot", "pending"] as const;
export type OnlyFilter = (typeof ONLY_FILTERS)[number];

/** The table's view: what the URL's query string holds. */
export interface ViewState {
  /** Substring of the host name or of a revision, any case. */
  q: string;
  sort: SortKey;
  desc: boolean;
  only: OnlyFilter | null;
}

export const DEFAULT_VIEW: ViewState = { q: "", sort: "host", desc: false, only: null };

/** The view a query string describes; unknown values fall back to the defaults. */
export function parseView(search: string): ViewState {
  const params = new URLSearchParams(search);
  const sort = params.get("sort");
  const only = params.get("only");
  return {
    q: params.get("q") ?? "",
    sort: (SORT_KEYS as readonly string[]).includes(sort ?? "") ? (sort as SortKey) : "host",
    desc: params.get("dir") === "desc",
    only: (ONLY_FILTERS as readonly string[]).includes(only ?? "") ? (only as OnlyFilter) : null,
  };
}

/** The query string (with `?`, or empty) for a view: defaults are left out. */
export function formatView(view: ViewState): string {
  const params = new URLSearchParams();
  if (view.q !== "") params.set("q", view.q);
  if (view.sort !== "host") params.set("sort", view.sort);
  if (view.desc) params.set("dir", "desc");
  if (view.only !== null) params.set("only", view.only);
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/** A host whose next boot or booted system differs from what runs now. */
export function isPending(host: HostJson): boolean {
  return (
    (host.nextboot !== null && host.nextboot !== host.current) ||
    (host.booted !== null && host.booted !== host.current)
  );
}

function matchesOnly(host: HostJson, only: OnlyFilter | null): boolean {
  if (only === "offline") return host.online === false;
  if (only === "reboot") return host.rebootRequired === true;
  if (only === "pending") return isPending(host);
  return true;
}

function includesFolded(value: string | null, needle: string): boolean {
  return value?.toLowerCase().includes(needle) === true;
}

const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

function nullableText(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return collator.compare(a, b);
}

function flag(value: boolean | null): number {
  return value === null ? 2 : value ? 0 : 1;
}

const COMPARATORS: Record<SortKey, (a: HostJson, b: HostJson) => number> = {
  host: (a, b) => collator.compare(a.displayName, b.displayName),
  current: (a, b) => nullableText(a.current, b.current),
  booted: (a, b) => nullableText(a.booted, b.booted),
  nextboot: (a, b) => nullableText(a.nextboot, b.nextboot),
  online: (a, b) => flag(a.online) - flag(b.online),
  reboot: (a, b) => flag(a.rebootRequired) - flag(b.rebootRequired),
  // Most recent first.
  updated: (a, b) => nullableText(b.updatedAt, a.updatedAt),
};

/** The hosts the view shows, in its order (ties broken by host name). */
export function applyView(hosts: Iterable<HostJson>, view: ViewState): HostJson[] {
  const needle = view.q.trim().toLowerCase();
  const shown: HostJson[] = [];
  for (const host of hosts) {
    if (!matchesOnly(host, view.only)) continue;
    if (
      needle !== "" &&
      !includesFolded(host.host, needle) &&
      !includesFolded(host.current, needle) &&
      !includesFolded(host.booted, needle) &&
      !includesFolded(host.nextboot, needle)
    ) {
      continue;
    }
    shown.push(host);
  }
  const compare = COMPARATORS[view.sort];
  const sign = view.desc ? -1 : 1;
  shown.sort((a, b) => sign * compare(a, b) || collator.compare(a.host, b.host));
  return shown;
}

/** The summary: hosts per current revision (most first) and the counts. */
export interface Summary {
  revisions: { revision: string | null; hosts: number }[];
  total: number;
  offline: number;
  reboot: number;
  pending: number;
}

export function summarize(hosts: Iterable<HostJson>): Summary {
  const perRevision = new Map<string | null, number>();
  const summary: Summary = { revisions: [], total: 0, offline: 0, reboot: 0, pending: 0 };
  for (const host of hosts) {
    summary.total += 1;
    perRevision.set(host.current, (perRevision.get(host.current) ?? 0) + 1);
    if (host.online === false) summary.offline += 1;
    if (host.rebootRequired === true) summary.reboot += 1;
    if (isPending(host)) summary.pending += 1;
  }
  summary.revisions = [...perRevision]
    .map(([revision, count]) => ({ revision, hosts: count }))
    .sort((a, b) => b.hosts - a.hosts || nullableText(a.revision, b.revision));
  return summary;
}

/** "12 s ago", "3 min ago", "2 h ago", "5 d ago"; "unknown" for null or a bad time. */
export function relativeTime(iso: string | null, now: number): string {
  if (iso === null) return "unknown";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "unknown";
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} d ago`;
}

/** The first `SHORT_REVISION` characters (code points) of a revision. */
export function shortRevision(revision: string): string {
  return revision.length <= SHORT_REVISION
    ? revision
    : Array.from(revision).slice(0, SHORT_REVISION).join("");
}
