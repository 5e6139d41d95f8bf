/**
 * `ogygia dashboard` run as a separate process on a free loopback port, and
 * the system's Chromium (Debian's package, never a downloaded browser)
 * driven by playwright-core, for the dashboard's browser tests.
 */

import { chromium, type Browser } from "playwright-core";

import { OGYGIA_BIN, baseEnv } from "./cli.js";
import { canConnect, freePort, startProcess, waitFor, type ManagedProcess } from "./process.js";

/** Where Debian installs Chromium (`scripts/install-test-deps`). */
export const CHROMIUM = "/usr/bin/chromium";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Tests run as root in containers, where Chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

export interface Dashboard {
  url: string;
  port: number;
  proc: ManagedProcess;
  /** Stops it with SIGTERM; resolves to its exit code. */
  stop(): Promise<number | null>;
}

/** Starts `ogygia dashboard` and waits until it accepts connections. */
export async function startDashboard(options: {
  config: string;
  stateDir: string;
  root: string;
  port?: number;
  extraArgs?: string[];
}): Promise<Dashboard> {
  const port = options.port ?? (await freePort());
  const proc = startProcess(
    OGYGIA_BIN,
    [
      "dashboard",
      "--listen",
      `127.0.0.1:${port}`,
      "--config",
      options.config,
      "--state-dir",
      options.stateDir,
      "--root",
      options.root,
      "--log-level",
      "debug",
      ...(options.extraArgs ?? []),
    ],
    { env: baseEnv({ OGYGIA_HOSTNAME: "observer.example.org" }) },
  );
  await waitFor(
    `ogygia dashboard on port ${port}`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`dashboard exited:\n${proc.output()}`);
      return (await canConnect(port)) ? true : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    proc,
    async stop() {
      if (proc.child.exitCode !== null) return proc.child.exitCode;
      proc.child.kill("SIGTERM");
      return proc.exited;
    },
  };
}
