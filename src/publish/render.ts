/**
 * Rendering of `ogygia publish --once`: a short table, or JSON.
 */

import { REVISION_WIDTH, formatTable, type OutputLine } from "../command/index.js";
import { escapeForTerminal, prepareDisplayWidth } from "../core/index.js";
import { backendLabel } from "../fleet/index.js";
import type { PublishResult } from "./command.js";

function valueCell(field: string, value: string | null): string {
  if (value === null) return "unknown";
  // Revisions are cut as in `ogygia status`; other values are short already.
  const shown =
    field === "current" || field === "booted" || field === "nextboot"
      ? Array.from(value).slice(0, REVISION_WIDTH).join("")
      : value;
  return escapeForTerminal(shown);
}

/** What was published, as the table printed by `ogygia publish --once`. */
export async function renderPublishText(result: PublishResult): Promise<OutputLine[]> {
  const out: OutputLine[] = [
    {
      stream: "stdout",
      text:
        `Published ${escapeForTerminal(result.host)} to ${backendLabel(result.backend)} ` +
        `(${escapeForTerminal(result.namespace)} via ${escapeForTerminal(result.configPath)}):`,
    },
  ];
  const rows = [
    ["Key", "Value", "Change"],
    ...result.keys.map((k) => [k.field, valueCell(k.field, k.value), k.change]),
  ];
  await prepareDisplayWidth(rows.flat());
  for (const line of formatTable(rows)) out.push({ stream: "stdout", text: line });
  if (!result.alive) {
    out.push({
      stream: "stderr",
      text: "No publisher daemon holds alive for this host, so it shows offline; run `ogygia publish` to keep it online.",
    });
  }
  for (const warning of result.warnings) {
    out.push({ stream: "stderr", text: `warning: ${escapeForTerminal(warning)}` });
  }
  return out;
}

/** The `--once --json` document. */
export function publishJson(result: PublishResult): unknown {
  return {
    host: result.host,
    backend: result.backend,
    namespace: result.namespace,
    configPath: result.configPath,
    keys: Object.fromEntries(
      result.keys.map((k) => [k.field, { value: k.value, change: k.change }]),
    ),
    rebootRequired: result.rebootRequired,
    updatedAt: result.updatedAt,
    alive: result.alive,
    warnings: result.warnings,
  };
}
