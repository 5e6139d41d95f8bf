/**
 * Runs the built CLI (`bin/ogygia`) as a separate process, as a user would.
 */

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The repository, found from this file whether it runs from source
 * (`test/helpers/`, under vitest) or compiled (`dist/test/helpers/`, under
 * `npm run bench`).
 */
export const REPO_ROOT = ((): string => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) {
    dir = path.dirname(dir);
  }
  return dir;
})();
export const OGYGIA_BIN = path.join(REPO_ROOT, "bin/ogygia");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  durationMs: number;
}

export interface CliOptions {
  /** Extra environment; `OGYGIA_HOSTNAME` defaults to `testhost.example.com`. */
  env?: Record<string, string | undefined>;
  /** Kill the process after this long (default 60 s). */
  timeoutMs?: number;
  input?: string;
}

/** A minimal environment, so the machine's own settings never leak into a test. */
export function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: "C.UTF-8",
    OGYGIA_HOSTNAME: "testhost.example.com",
  };
  for (const [key, value] of Object.entries(extra)) {
    if (value === undefined) Reflect.deleteProperty(env, key);
    else env[key] = value;
  }
  return env;
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return runCommand(OGYGIA_BIN, args, options);
}

export function runCommand(
  command: string,
  args: readonly string[],
  options: CliOptions = {},
): Promise<CliResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: baseEnv(options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.on("error", reject);
    // A child that exits without reading its input is not an error of ours.
    child.stdin.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, durationMs: performance.now() - started });
    });
    child.stdin.end(options.input ?? "");
  });
}
