/**
 * The system store paths a host publishes beside its revisions:
 * `current_system`, `booted_system` and `nextboot_system`, so that the
 * fleet knows what runs, not only which commit built it.
 */

import { SYSTEM_PATH_FIELDS, type SystemPathField } from "../fleet/index.js";
import { SYSTEM_STATES, readSystemPath } from "../system/index.js";

export type SystemPathValues = Record<SystemPathField, string | null>;

/** Each state's store path under `root` (null when unknown), and why any could not be read. */
export function readSystemPaths(root: string): { values: SystemPathValues; problems: string[] } {
  const values: SystemPathValues = {
    current_system: null,
    booted_system: null,
    nextboot_system: null,
  };
  const problems: string[] = [];
  for (const state of SYSTEM_STATES) {
    const reading = readSystemPath(root, state);
    values[`${state}_system`] = reading.storePath;
    if (reading.problem !== undefined) problems.push(reading.problem);
  }
  return { values, problems };
}

/** The system path fields a publication has values for, in their published order. */
export function systemPathFieldsOf(local: Partial<SystemPathValues>): SystemPathField[] {
  return SYSTEM_PATH_FIELDS.filter((field) => field in local);
}
