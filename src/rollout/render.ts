/**
 * `ogygia rollout status` as text: the rollout's line, then one line per
 * wave and per host. `--json` prints the `Progress` object itself.
 */

import { escapeForTerminal } from "../core/index.js";
import type { Progress } from "./progress.js";

/** The report's lines. */
export function renderProgress(progress: Progress | null): string[] {
  if (!progress) return ["no rollout (start one with `ogygia rollout start RELEASE.json`)"];
  const lines = [
    `rollout ${progress.id} (revision ${progress.revision.slice(0, 12)}): ${progress.state}, ` +
      `${progress.failures}/${progress.budget} failed, concurrency ${progress.concurrency}, ` +
      `soak ${progress.soakSeconds}s`,
  ];
  for (const wave of progress.waves) {
    const hosts = progress.hosts.filter((h) => h.wave === wave.index);
    const confirmed = hosts.filter((h) => h.state === "confirmed").length;
    lines.push(
      `wave ${wave.index + 1}: ${confirmed}/${hosts.length} confirmed` +
        (wave.done && wave.soakUntil !== null ? `, soaked at ${wave.soakUntil}` : ""),
    );
    for (const h of hosts) {
      const error = h.error === null ? "" : ` — ${escapeForTerminal(h.error)}`;
      lines.push(
        `  ${escapeForTerminal(h.host)}: ${h.state}${h.online ? "" : " (offline)"}${error}`,
      );
    }
  }
  return lines;
}
