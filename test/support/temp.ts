/**
 * Temporary folders for tests and benches. Every folder made here is
 * recorded, and `removeTempDirs` removes them all: the setup file
 * test/helpers/cleanup.ts calls it after each test file, after the file's
 * own hooks, so a test that forgets (or cannot, having failed) leaves
 * nothing in /tmp.
 */

import { mkdtempSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

const made: string[] = [];

/** A new folder `<tmpdir>/ogygia-<prefix>-XXXXXX`, removed by `removeTempDirs` if not before. */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `ogygia-${prefix}-`));
  made.push(dir);
  return dir;
}

/** `tempDir`, synchronously. */
export function tempDirSync(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `ogygia-${prefix}-`));
  made.push(dir);
  return dir;
}

/** Removes every folder `tempDir` and `tempDirSync` made in this module instance. */
export async function removeTempDirs(): Promise<void> {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
}
