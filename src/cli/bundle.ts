/**
 * The entry of the CLI's bundle (`dist/bundle/ogygia.cjs`, CommonJS), which
 * `bin/ogygia` runs. When node builds a V8 startup snapshot from the bundle
 * (`scripts/build-snapshot.js`), the program does not start: the snapshot's
 * main function calls `start` in the process that deserializes it.
 */

import { startupSnapshot } from "node:v8";

import { collectStatus, renderStatusText, statusJson } from "../status/index.js";
import { findCommand, parseCommandArgs } from "./args.js";
import { COMMANDS } from "./commands.js";
import { runProgram } from "./main.js";

/** Runs the CLI on this process's arguments, then exits. */
export function start(): void {
  void runProgram(process.argv.slice(2), { script: process.argv[1] ?? "" });
}

/**
 * Runs `ogygia status`'s path once without output, while the snapshot
 * builds, so that its functions are compiled in the snapshot rather than at
 * every start. Touches no process state that the snapshot would keep: no
 * streams, no environment (the host name is given), a root that does not exist.
 */
async function warmUp(): Promise<void> {
  const found = findCommand(COMMANDS, ["status", "--root", "/"]);
  if (found) parseCommandArgs(found.command, found.rest);
  const report = await collectStatus({
    hostname: Promise.resolve({ hostname: "warm-up.example", source: "OGYGIA_HOSTNAME" }),
    root: "/nonexistent/ogygia-snapshot-warm-up",
    env: {},
  });
  await renderStatusText(report);
  statusJson(report);
}

if (startupSnapshot.isBuildingSnapshot()) void warmUp();
else start();
