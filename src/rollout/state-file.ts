/**
 * The agent's own record of its update, on disk, so that an update in
 * progress is finished or rolled back after the agent's crash (SIGKILL) or
 * a reboot: written to a temporary file, synced and renamed over
 * `<state dir>/state.json` before each step it describes is taken.
 */

import { readFileSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import path from "node:path";

import { OgygiaError, hasErrorCode } from "../core/index.js";
import { UPDATE_STATES, type UpdateState } from "./progress.js";

export interface AgentRecord {
  state: UpdateState;
  rollout: string;
  target: string;
  /** The system that ran before the update: what a rollback returns to. */
  previous: string | null;
  /** The profile's system before the update (null when there was none). */
  previousProfile: string | null;
  error: string | null;
  startedAt: string;
  changedAt: string;
  finishedAt: string | null;
  /**
   * The update goes through a reboot (the release changes the kernel,
   * initrd or modules, and the policy allows it): the new system is made
   * the boot default, the host reboots, and health is checked after the
   * boot. Absent in records of updates without one.
   */
  reboot?: boolean;
}

const FILE = "state.json";

/** The record under `dir`, or null when there is none. A damaged file is an error naming it. */
export function loadRecord(dir: string): AgentRecord | null {
  const file = path.join(dir, FILE);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (hasErrorCode(err, "ENOENT")) return null;
    throw new OgygiaError("ERR_OGYGIA_UPDATE", `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const data = JSON.parse(text) as AgentRecord;
    if (
      !(UPDATE_STATES as readonly string[]).includes(data.state) ||
      typeof data.target !== "string"
    ) {
      throw new Error("fields missing");
    }
    return data;
  } catch (err) {
    throw new OgygiaError(
      "ERR_OGYGIA_UPDATE",
      `the update state ${file} is damaged: ${(err as Error).message}`,
      {
        hint: "check the running system, then remove the file to let the agent start afresh",
      },
    );
  }
}

/**
 * Writes the record durably: temp file, fsync, rename, fsync of the folder.
 * Asynchronous, so that a slow disk holds up this update only.
 */
export async function saveRecord(dir: string, record: AgentRecord): Promise<void> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, FILE);
  const temp = `${file}.tmp-${process.pid}`;
  const handle = await open(temp, "w", 0o644);
  try {
    await handle.writeFile(`${JSON.stringify(record, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  const folder = await open(dir, "r");
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
