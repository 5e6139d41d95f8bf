/**
 * A host's update, as its agent (`ogygia update`) publishes it in
 * `update_*` fields: shown as a marker by the table and whole by `--json`.
 */

import { fieldIndex, type FleetValue } from "../fleet/index.js";

export interface HostUpdateStatus {
  state: string;
  target: string | null;
  error: string | null;
  rollout: string | null;
  startedAt: string | null;
  changedAt: string | null;
  finishedAt: string | null;
}

/** States between the start and the end of an update, the wait for a reboot window included. */
const IN_PROGRESS = new Set([
  "realising",
  "activating",
  "checking",
  "confirming",
  "rolling-back",
  "waiting-reboot-window",
  "rebooting",
  "rebooting-back",
]);

const STATE = fieldIndex("update_state");
const TARGET = fieldIndex("update_target");
const ERROR = fieldIndex("update_error");
const ROLLOUT = fieldIndex("update_rollout");
const STARTED_AT = fieldIndex("update_started_at");
const CHANGED_AT = fieldIndex("update_changed_at");
const FINISHED_AT = fieldIndex("update_finished_at");

function text(value: FleetValue | undefined): string | null {
  if (value === undefined) return null;
  return (typeof value === "string" ? value : Buffer.from(value).toString("utf8")).slice(0, 4096);
}

/**
 * The host's update, or null when its agent never published one: from the
 * fleet table row whose values start at `values[base]` (see `FleetTable`).
 */
export function readHostUpdate(
  values: readonly (FleetValue | undefined)[],
  base: number,
): HostUpdateStatus | null {
  const state = text(values[base + STATE]);
  if (state === null) return null;
  return {
    state,
    target: text(values[base + TARGET]),
    error: text(values[base + ERROR]),
    rollout: text(values[base + ROLLOUT]),
    startedAt: text(values[base + STARTED_AT]),
    changedAt: text(values[base + CHANGED_AT]),
    finishedAt: text(values[base + FINISHED_AT]),
  };
}

/**
 * The table's marker for a host mid-update, whose update failed, or that was
 * skipped (its path failed elsewhere), else undefined.
 */
export function updateMarker(update: HostUpdateStatus | null | undefined): string | undefined {
  if (!update) return undefined;
  if (IN_PROGRESS.has(update.state)) return `updating: ${update.state}`;
  if (update.state === "rolled-back" || update.state === "failed" || update.state === "skipped") {
    return `update ${update.state}`;
  }
  return undefined;
}
