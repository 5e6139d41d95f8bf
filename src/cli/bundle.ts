/**
 * The entry of the CLI's bundle (`dist/bundle/ogygia.cjs`, CommonJS, with
 * what this module reaches by static imports; the rest, loaded with
 * `import()`, is `dist/bundle/ogygia-lazy.cjs`: scripts/bundle-cli.js), which
 * `bin/ogygia` runs through its launcher (`scripts/launch.cjs`, compiling
 * the bundle with V8's code cache). While the build makes that cache
 * (`scripts/build-code-cache.js`), the program does not start: the build
 * runs `warmUp` and saves what V8 compiled.
 */

import { collectStatus, renderStatusText, statusJson } from "../status/index.js";
import { findCommand, parseCommandArgs } from "./args.js";
import { runProgram } from "./main.js";
import { STATUS_COMMAND } from "./status-command.js";

/** Runs the CLI on this process's arguments, then exits. */
export function start(): void {
  void runProgram(process.argv.slice(2), { script: process.argv[1] ?? "" });
}

/**
 * Runs `ogygia status`'s path once without output, while the build makes the
 * code cache, so that its functions are compiled in the cache rather than at
 * every start. No output, no environment (the host name is given); `root` is
 * a tree the build lays out like a NixOS host's (state links into a store
 * path with a build-revision file), so that the functions a real host's
 * start runs are the ones compiled.
 */
export async function warmUp(root = "/nonexistent/ogygia-code-cache-warm-up"): Promise<void> {
  const found = findCommand([STATUS_COMMAND], ["status", "--root", "/"]);
  if (found) parseCommandArgs(found.command, found.rest);
  const report = await collectStatus({
    hostname: Promise.resolve({ hostname: "warm-up.example", source: "OGYGIA_HOSTNAME" }),
    root,
    env: {},
  });
  await renderStatusText(report);
  statusJson(report);
}

/** Set by the build while it makes the code cache; the bundle then does not start. */
const buildingCodeCache =
  (globalThis as Record<symbol, unknown>)[Symbol.for("ogygia.buildingCodeCache")] === true;
if (!buildingCodeCache) start();
