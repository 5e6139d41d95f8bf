/**
 * A host's update, as its agent (`ogygia update`) publishes it in
 * `update_*` fields: shown as a marker by the table and whole by `--json`.
 */

import type { HostValues } from "../fleet/index.js";

export interface HostUpdateStatus {
  state: string;
  target: string | null;
  error: string | null;
  rollout: string | null;
  startedAt: string | null;
  changedAt: string | null;
  finishedAt: string | null;
}

/** States between the start and the end of an update. */
const IN_PROGRESS = new Set(["realising", "activating", "checking", "confirming", "rolling-back"]);

const field = (values: HostValues, name: Parameters<HostValues["get"]>[0]): string | null => {
  const raw = values.get(name);
  return raw === undefined ? null : Buffer.from(raw).toString("utf8").slice(0, 4096);
};

/** The host's update, or null when its agent never published one. */
export function readHostUpdate(values: HostValues): HostUpdateStatus | null {
  const state = field(values, "update_state");
  if (state === null) return null;
  return {
    state,
    target: field(values, "update_target"),
    error: field(values, "update_error"),
    rollout: field(values, "update_rollout"),
    startedAt: field(values, "update_started_at"),
    changedAt: field(values, "update_changed_at"),
    finishedAt: field(values, "update_finished_at"),
  };
}

/** The table's marker for a host mid-update or whose update failed, else undefined. */
export function updateMarker(update: HostUpdateStatus | null | undefined): string | undefined {
  if (!update) return undefined;
  if (IN_PROGRESS.has(update.state)) return `updating: ${update.state}`;
  if (update.state === "rolled-back" || update.state === "failed") return `update ${update.state}`;
  return undefined;
}
