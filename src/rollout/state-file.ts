/**
 * The agent's own record of its update, on disk, so that an update in
 * progress is finished or rolled back after the agent's crash (SIGKILL) or
 * a reboot: written to a temporary file and renamed over
 * `<state dir>/state.json` before each step it describes is taken (so a
 * crashed agent finds the whole record of its last step), and synced to
 * the disk, file and folder, before the steps that change what the host
 * boots (see `saveRecord`).
 */

import {
  closeSync,
  fsync as fsyncCallback,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { promisify } from "node:util";
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
  /** Reboots back to `previous` made so far (absent: none); see MAX_REBOOTS_BACK. */
  rebootsBack?: number;
}

const FILE = "state.json";
/** Folders this process made (or found): made once, not before each write. */
const madeDirs = new Set<string>();
const fsync = promisify(fsyncCallback);

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
 * Writes the record atomically (temp file, rename): a crash of the agent
 * never leaves half a record. With `durable`, also through a power loss:
 * the file is synced before the rename, and the folder after it. The syncs
 * are asynchronous, so that a slow disk holds up this update only; the
 * other calls reach the page cache only and are made synchronously (each
 * asynchronous call would wait for a turn of a busy event loop).
 */
export async function saveRecord(
  dir: string,
  record: AgentRecord,
  options: { durable: boolean },
): Promise<void> {
  const file = path.join(dir, FILE);
  const temp = `${file}.tmp-${process.pid}`;
  if (!madeDirs.has(dir)) {
    mkdirSync(dir, { recursive: true });
    madeDirs.add(dir);
  }
  let fd: number;
  try {
    fd = openSync(temp, "w", 0o644);
  } catch (err) {
    // The folder was removed since: made again.
    if (!hasErrorCode(err, "ENOENT")) throw err;
    mkdirSync(dir, { recursive: true });
    fd = openSync(temp, "w", 0o644);
  }
  try {
    writeFileSync(fd, `${JSON.stringify(record, null, 2)}\n`);
    if (options.durable) await fsync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, file);
  if (!options.durable) return;
  const folder = openSync(dir, "r");
  try {
    await fsync(folder);
  } finally {
    closeSync(folder);
  }
}
