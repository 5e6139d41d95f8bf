/**
 * Rendering of a status report: the reference's table, or JSON.
 */

import {
  displayWidth,
  escapeForTerminal,
  padEndDisplay,
  prepareDisplayWidth,
} from "../core/index.js";
import { backendLabel } from "../fleet/index.js";
import type { HostStatus, StatusReport } from "./collect.js";

/** Revisions are shown cut to this many characters. */
export const REVISION_WIDTH = 12;

const HEADERS = ["Host", "⚡ current", "🥾 booted", "🔜 next boot"] as const;
const GUTTER = "  ";

/** A piece of output and the stream it belongs on. */
export interface OutputLine {
  stream: "stdout" | "stderr";
  text: string;
}

function revisionCell(row: HostStatus, state: "current" | "booted" | "nextboot"): string {
  if (row.unreadable.includes(state)) return row.local ? "unreadable" : "invalid";
  const revision = row[state];
  if (revision === null) return "unknown";
  // Revisions are checked when read (no control characters), so only cut them;
  // the fast path avoids splitting ASCII into code points.
  if (/^[\x20-\x7e]*$/.test(revision)) return revision.slice(0, REVISION_WIDTH);
  return escapeForTerminal(Array.from(revision).slice(0, REVISION_WIDTH).join(""));
}

/**
 * The host cell: the name with its markers in parentheses. `(local)` is
 * shown only beside fleet rows, as in the reference; `(offline)` for a host
 * whose publisher has gone (it wrote keys once, and `alive` is gone);
 * `(reboot required)` when its booted kernel, initrd or modules differ from
 * the next boot's. Markers never add a column, so the reference layout stays.
 */
function hostCell(row: HostStatus, mode: StatusReport["mode"]): string {
  const name = escapeForTerminal(row.displayName);
  const markers: string[] = [];
  const local = row.local && mode !== "local";
  if (local) markers.push("local");
  if (row.online === false) markers.push("offline");
  if (row.rebootRequired === true) markers.push("reboot required");
  const marked = markers.length > 0 ? `${name} (${markers.join(", ")})` : name;
  return local ? `* ${marked}` : marked;
}

/** The banner line that says where the data comes from. */
export function bannerLine(report: StatusReport): string {
  if (report.mode === "local") {
    return report.configPath === null
      ? "Ogygia config not found; showing local data only."
      : `No etcd or ZooKeeper configured in ${escapeForTerminal(report.configPath)}; showing local data only.`;
  }
  const path = escapeForTerminal(report.configPath ?? "");
  return `${backendLabel(report.mode)} fleet state (${escapeForTerminal(report.namespace ?? "")} via ${path}):`;
}

/** Lays out rows so that columns line up by display width. */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, displayWidth(cell));
    });
  }
  const lines = rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : padEndDisplay(cell, widths[i] ?? 0)))
      .join(GUTTER),
  );
  const ruleWidth = widths.reduce((sum, w) => sum + w, 0) + GUTTER.length * (widths.length - 1);
  const [header, ...body] = lines;
  return [header ?? "", "-".repeat(ruleWidth), ...body];
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
  const rows = [
    [...HEADERS],
    ...report.hosts.map((row) => [
      hostCell(row, report.mode),
      revisionCell(row, "current"),
      revisionCell(row, "booted"),
      revisionCell(row, "nextboot"),
    ]),
  ];
  await prepareDisplayWidth(rows.flat());
  for (const line of formatTable(rows)) out.push({ stream: "stdout", text: line });
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
    })),
    warnings: report.warnings,
  };
}
