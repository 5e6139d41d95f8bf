/**
 * Rendering of a status report: the reference's table, or JSON.
 */

import { REVISION_WIDTH, layoutTable, type Cell, type OutputLine } from "../command/index.js";
import { escapeForTerminal, prepareDisplayWidth } from "../core/index.js";
import { backendLabel, describeBackends } from "../fleet/index.js";
import type { HostStatus, StatusReport } from "./collect.js";
import { updateMarker } from "./update.js";

const HEADERS = ["Host", "⚡ current", "🥾 booted", "🔜 next boot"] as const;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function revisionCell(row: HostStatus, state: "current" | "booted" | "nextboot"): Cell {
  if (row.unreadable.length > 0 && row.unreadable.includes(state)) {
    return row.local ? UNREADABLE : INVALID;
  }
  const revision = row[state];
  if (revision === null) return UNKNOWN;
  // Revisions are checked when read (no control characters), so only cut them;
  // the fast path avoids splitting ASCII into code points.
  if (PRINTABLE_ASCII.test(revision)) {
    const text = revision.length > REVISION_WIDTH ? revision.slice(0, REVISION_WIDTH) : revision;
    return { text, width: text.length };
  }
  return {
    text: escapeForTerminal(Array.from(revision).slice(0, REVISION_WIDTH).join("")),
    width: -1,
  };
}

// Shared by every row: `layoutTable` writes only widths that are unknown (-1).
const UNREADABLE: Cell = Object.freeze({ text: "unreadable", width: 10 });
const INVALID: Cell = Object.freeze({ text: "invalid", width: 7 });
const UNKNOWN: Cell = Object.freeze({ text: "unknown", width: 7 });

/**
 * The host cell: the name with its markers in parentheses. `(local)` is
 * shown only beside fleet rows, as in the reference; `(offline)` for a host
 * whose publisher has gone (it wrote keys once, and `alive` is gone);
 * `(reboot required)` when its booted kernel, initrd or modules differ from
 * the next boot's. Markers never add a column, so the reference layout stays.
 */
/** Host names longer than this (in characters) are cut in the table; `--json` has them whole. */
export const MAX_HOST_CHARACTERS = 64;

/** The name as the table shows it: cut to `MAX_HOST_CHARACTERS` with an ellipsis. */
function tableName(name: string): string {
  if (name.length <= MAX_HOST_CHARACTERS) return name;
  const chars = Array.from(name);
  return chars.length <= MAX_HOST_CHARACTERS
    ? name
    : `${chars.slice(0, MAX_HOST_CHARACTERS - 1).join("")}…`;
}

function hostCell(row: HostStatus, mode: StatusReport["mode"]): Cell {
  const shown = tableName(row.displayName);
  // Printable ASCII needs no escaping, and its width is its length.
  const plain = PRINTABLE_ASCII.test(shown);
  const name = plain ? shown : escapeForTerminal(shown);
  const local = row.local && mode !== "local";
  const offline = row.online === false;
  const reboot = row.rebootRequired === true;
  const update = updateMarker(row.update);
  let text = name;
  if (local || offline || reboot || update !== undefined) {
    const markers: string[] = [];
    if (local) markers.push("local");
    if (offline) markers.push("offline");
    if (reboot) markers.push("reboot required");
    if (update !== undefined) markers.push(update);
    text = `${name} (${markers.join(", ")})`;
    if (local) text = `* ${text}`;
  }
  return { text, width: plain ? text.length : -1 };
}

/** The banner line that says where the data comes from. */
export function bannerLine(report: StatusReport): string {
  if (report.mode === "local") {
    return report.configPath === null
      ? "Ogygia config not found; showing local data only."
      : `No ${describeBackends("label", "or")} configured in ${escapeForTerminal(report.configPath)}; showing local data only.`;
  }
  const path = escapeForTerminal(report.configPath ?? "");
  return `${backendLabel(report.mode)} fleet state (${escapeForTerminal(report.namespace ?? "")} via ${path}):`;
}

/** The human-readable report: banner, diagnostics and table. */
export async function renderStatusText(report: StatusReport): Promise<OutputLine[]> {
  const out: OutputLine[] = [{ stream: "stdout", text: bannerLine(report) }];
  if (report.error !== null && report.mode !== "local") {
    out.push({
      stream: "stderr",
      text:
        `Failed to read ${backendLabel(report.mode)} from ${escapeForTerminal(report.configPath ?? "")}: ` +
        `${escapeForTerminal(report.error)} Showing local data only.`,
    });
  }
  const rows: Cell[][] = [HEADERS.map((text) => ({ text, width: -1 }))];
  const needWidth: string[] = [];
  for (const row of report.hosts) {
    const cells = [
      hostCell(row, report.mode),
      revisionCell(row, "current"),
      revisionCell(row, "booted"),
      revisionCell(row, "nextboot"),
    ];
    for (const cell of cells) if (cell.width < 0) needWidth.push(cell.text);
    rows.push(cells);
  }
  // The headers are known labels: only other non-ASCII cells can need the library.
  await prepareDisplayWidth(needWidth);
  for (const line of layoutTable(rows)) out.push({ stream: "stdout", text: line });
  const cut = report.hosts.filter((h) => tableName(h.displayName) !== h.displayName).length;
  if (cut > 0) {
    out.push({
      stream: "stderr",
      text:
        `warning: ${cut} host name${cut === 1 ? " is" : "s are"} longer than ${MAX_HOST_CHARACTERS} characters, ` +
        "cut in the table (--json has them whole)",
    });
  }
  if (report.nothingPublished) {
    out.push({
      stream: "stderr",
      text: `No hosts have published to ${escapeForTerminal(report.namespace ?? "")} yet; showing the local host only.`,
    });
  }
  for (const warning of report.warnings) {
    out.push({ stream: "stderr", text: `warning: ${escapeForTerminal(warning)}` });
  }
  return out;
}

/**
 * The `--json` document. Full revisions; null where unknown. `online` is
 * null when nothing says whether the host is up (local-only mode, or a host
 * no ogygia publisher ever wrote for).
 */
export function statusJson(report: StatusReport): unknown {
  return {
    mode: report.mode,
    configPath: report.configPath,
    namespace: report.namespace,
    error: report.error,
    nothingPublished: report.nothingPublished,
    hosts: report.hosts.map((h) => ({
      host: h.host,
      displayName: h.displayName,
      local: h.local,
      current: h.current,
      booted: h.booted,
      nextboot: h.nextboot,
      online: h.online,
      rebootRequired: h.rebootRequired,
      updatedAt: h.updatedAt,
      currentSystem: h.systems?.current ?? null,
      bootedSystem: h.systems?.booted ?? null,
      nextbootSystem: h.systems?.nextboot ?? null,
      // Only for hosts whose agent published an update, so documents of fleets without
      // `ogygia update` are unchanged.
      ...(h.update && { update: h.update }),
    })),
    warnings: report.warnings,
  };
}
