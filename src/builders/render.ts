/**
 * `ogygia builders` output: the machines file on stdout (so it can be
 * redirected into place), findings on stderr; or one JSON document.
 */

import type { OutputLine } from "../command/index.js";
import { escapeForTerminal } from "../core/index.js";
import type { BuilderRow, BuildersList } from "./command.js";

/** The machines file on stdout; probe results and refused entries on stderr. */
export function renderBuilders(list: BuildersList, checked: boolean): OutputLine[] {
  const lines: OutputLine[] = [];
  for (const { host, problem } of list.malformed) {
    lines.push({
      stream: "stderr",
      text: `warning: skipping the builder entry of ${escapeForTerminal(host)}: ${escapeForTerminal(problem)}`,
    });
  }
  for (const row of list.builders) {
    lines.push({ stream: "stdout", text: row.line });
    if (checked && row.probe?.ok === true) {
      lines.push({
        stream: "stderr",
        text: `ok: ${escapeForTerminal(row.host)} (${escapeForTerminal(row.entry.uri)}) answers: ${escapeForTerminal(row.probe.version)}`,
      });
    }
  }
  for (const row of list.failed) {
    const reason = row.probe && !row.probe.ok ? row.probe.reason : "not probed";
    lines.push({
      stream: "stderr",
      text: `failed: ${escapeForTerminal(row.host)} (${escapeForTerminal(row.entry.uri)}): ${escapeForTerminal(reason)}`,
    });
  }
  if (list.builders.length === 0 && list.failed.length === 0) {
    lines.push({ stream: "stderr", text: "no online builders in the fleet besides this host" });
  }
  return lines;
}

function rowJson(row: BuilderRow): Record<string, unknown> {
  return {
    host: row.host,
    ...row.entry,
    line: row.line,
    ...(row.probe ? { probe: row.probe } : {}),
  };
}

/** The `--json` document. */
export function buildersJson(list: BuildersList): Record<string, unknown> {
  return {
    host: list.host,
    builders: list.builders.map(rowJson),
    failed: list.failed.map(rowJson),
    malformed: list.malformed,
  };
}
