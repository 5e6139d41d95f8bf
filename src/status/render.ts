/**
 * Rendering of a status report: the reference's table, or JSON.
 */

import { REVISION_WIDTH, type OutputLine } from "../command/index.js";
import { displayWidth, escapeForTerminal, prepareDisplayWidth } from "../core/index.js";
import { backendLabel, describeBackends } from "../fleet/index.js";
import type { HostStatus, StatusReport } from "./collect.js";
import { updateMarker } from "./update.js";

const HEADERS = ["Host", "⚡ current", "🥾 booted", "🔜 next boot"] as const;
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * One column of the table: each row's text and its display width, -1 where
 * it is not known yet (non-ASCII text, measured once the width library is
 * loaded). Columns of plain arrays instead of a cell object per row: the
 * table has 10,000 rows for 10,000 hosts.
 */
class Column {
  readonly texts: string[] = [];
  readonly widths: number[] = [];
  /** The widest cell, once `measure` has run. */
  width = 0;

  push(text: string, width: number): void {
    this.texts.push(text);
    this.widths.push(width);
  }

  /** Texts whose width is unknown. */
  unknown(into: string[]): void {
    const { texts, widths } = this;
    for (let i = 0; i < widths.length; i++) if ((widths[i] ?? 0) < 0) into.push(texts[i] ?? "");
  }

  /** Fills in unknown widths (after `prepareDisplayWidth`) and finds the widest. */
  measure(): void {
    const { texts, widths } = this;
    let widest = 0;
    for (let i = 0; i < widths.length; i++) {
      let width = widths[i] ?? 0;
      if (width < 0) widths[i] = width = displayWidth(texts[i] ?? "");
      if (width > widest) widest = width;
    }
    this.width = widest;
  }
}

function pushRevision(
  column: Column,
  row: HostStatus,
  state: "current" | "booted" | "nextboot",
): void {
  if (row.unreadable.length > 0 && row.unreadable.includes(state)) {
    if (row.local) column.push("unreadable", 10);
    else column.push("invalid", 7);
    return;
  }
  const revision = row[state];
  if (revision === null) {
    column.push("unknown", 7);
    return;
  }
  // Revisions are checked when read (no control characters), so only cut them;
  // the fast path avoids splitting ASCII into code points.
  if (PRINTABLE_ASCII.test(revision)) {
    const text = revision.length > REVISION_WIDTH ? revision.slice(0, REVISION_WIDTH) : revision;
    column.push(text, text.length);
    return;
  }
  column.push(escapeForTerminal(Array.from(revision).slice(0, REVISION_WIDTH).join("")), -1);
}

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

function pushHost(column: Column, row: HostStatus, mode: StatusReport["mode"]): void {
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
  column.push(text, plain ? text.length : -1);
}

/** Space runs by length, shared by every line. */
const SPACES: string[] = [];

function spaces(count: number): string {
  return (SPACES[count] ??= " ".repeat(count));
}

/**
 * Appends the table's lines to `out` as `layoutTable` lays them out: every
 * column but the last padded to its widest cell and a two-space gutter, a
 * rule under the header spanning them all.
 */
function layoutColumns(
  columns: readonly [Column, Column, Column, Column],
  out: OutputLine[],
): void {
  const [a, b, c, d] = columns;
  const line = (i: number): string =>
    (a.texts[i] ?? "") +
    spaces(a.width - (a.widths[i] ?? 0) + 2) +
    (b.texts[i] ?? "") +
    spaces(b.width - (b.widths[i] ?? 0) + 2) +
    (c.texts[i] ?? "") +
    spaces(c.width - (c.widths[i] ?? 0) + 2) +
    (d.texts[i] ?? "");
  out.push({ stream: "stdout", text: line(0) });
  out.push({ stream: "stdout", text: "-".repeat(a.width + b.width + c.width + d.width + 6) });
  for (let i = 1; i < a.texts.length; i++) out.push({ stream: "stdout", text: line(i) });
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
  const columns = [new Column(), new Column(), new Column(), new Column()] as const;
  const [hosts, current, booted, nextboot] = columns;
  for (const [i, column] of columns.entries()) column.push(HEADERS[i] ?? "", -1);
  for (const row of report.hosts) {
    pushHost(hosts, row, report.mode);
    pushRevision(current, row, "current");
    pushRevision(booted, row, "booted");
    pushRevision(nextboot, row, "nextboot");
  }
  // The headers are known labels: only other non-ASCII cells can need the library.
  const needWidth: string[] = [];
  for (const column of columns) column.unknown(needWidth);
  await prepareDisplayWidth(needWidth);
  for (const column of columns) column.measure();
  layoutColumns(columns, out);
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
