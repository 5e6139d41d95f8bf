/**
 * The reboot policy of `[ogygia.update]`: whether a release needs a reboot
 * (its kernel, initrd or kernel modules differ from the booted system's,
 * as `ogygia impact` decides it), whether the host may reboot now, and
 * the reboot itself (a configurable command, `systemctl reboot` by default).
 */

import path from "node:path";

import { parseRebootWindow } from "../config/index.js";
import { DEFAULT_IRISD_URL } from "../iris/index.js";
import { IrisdClient, StoreFiles, systemChanges } from "../impact/index.js";
import { openStoreDb } from "../nix/index.js";
import { runProgram } from "./host-system.js";

export type RebootPolicy = "never" | "always" | "window";

export interface RebootSettings {
  policy: RebootPolicy;
  /** "HH:MM-HH:MM", local time (used by "window"). */
  window: string;
  command: string[];
}

/**
 * The boot links (`kernel`, `initrd`, `kernel-modules`) that differ between
 * the booted system and `target`, both read from the store under `root`
 * (`target` realised first). Empty when no reboot is needed.
 */
export async function bootLinksChanged(
  root: string,
  booted: string,
  target: string,
): Promise<string[]> {
  const store = openStoreDb({ root: path.resolve(root) });
  // Both systems are in the local store: the client is never asked.
  const irisd = new IrisdClient({ baseUrl: DEFAULT_IRISD_URL, concurrency: 1 });
  try {
    const changes = await systemChanges(new StoreFiles({ store, irisd }), booted, target);
    return changes.bootLinksChanged;
  } finally {
    irisd.close();
    store.close();
  }
}

/** Whether `now` (local time) is inside the window "HH:MM-HH:MM"; a window may span midnight. */
export function inRebootWindow(window: string, now: Date): boolean {
  const parsed = parseRebootWindow(window);
  if (!parsed) return false;
  const minute = now.getHours() * 60 + now.getMinutes();
  return parsed.start < parsed.end
    ? minute >= parsed.start && minute < parsed.end
    : minute >= parsed.start || minute < parsed.end;
}

/** Milliseconds from `now` until the window opens (0 inside it). */
export function msUntilWindow(window: string, now: Date): number {
  const parsed = parseRebootWindow(window);
  if (!parsed || inRebootWindow(window, now)) return 0;
  const minute = now.getHours() * 60 + now.getMinutes();
  const wait = (parsed.start - minute + 24 * 60) % (24 * 60);
  return wait * 60_000 - now.getSeconds() * 1000 - now.getMilliseconds();
}

/** Whether the policy lets the host reboot now. */
export function mayRebootNow(settings: RebootSettings, now: Date): boolean {
  if (settings.policy === "always") return true;
  if (settings.policy === "window") return inRebootWindow(settings.window, now);
  return false;
}

/** Runs the reboot command (`OGYGIA_ROOT` is the root); throws when it fails. */
export async function triggerReboot(
  root: string,
  command: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const [program, ...args] = command;
  if (program === undefined) throw new Error("no reboot command");
  const env: NodeJS.ProcessEnv = { ...process.env, OGYGIA_ROOT: path.resolve(root) };
  const result = await runProgram(program, args, { env, timeoutMs });
  if (result.code !== 0) {
    throw new Error(
      `${command.join(" ")} failed (${result.code ?? "no exit code"}): ${result.output.trim().split("\n").slice(-2).join(" ")}`,
    );
  }
}
