/**
 * Shared helpers for integration tests: free ports, temporary folders,
 * waiting for a condition, and child processes that are always stopped.
 */

import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { rm } from "node:fs/promises";
import net from "node:net";

/** A free TCP port on 127.0.0.1 (asks the kernel, then releases it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not allocate a port"));
      });
    });
  });
}

export { tempDir } from "../support/temp.js";

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` until it returns a value other than undefined, or fails after
 * `timeoutMs` with `what` in the message. Bounded: never loops forever.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  { timeoutMs = 15_000, intervalMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      resolve(false);
    });
  });
}

/** A child process whose output is kept for failure messages. */
export interface ManagedProcess {
  child: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr), last 64 KiB. */
  output(): string;
  /** Sends `signal` and waits for the process to exit (SIGKILL after 10 s). */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Resolves when the process exits. */
  exited: Promise<number | null>;
}

export function startProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): ManagedProcess {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-65536);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      resolve(code);
    });
    child.once("error", (err) => {
      output += `\nspawn error: ${err.message}`;
      resolve(null);
    });
  });
  return {
    child,
    output: () => output,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A test server process that can be frozen, stopped and started again. */
export interface ServerControl {
  /** Freezes the server process (SIGSTOP): it keeps its socket but answers nothing. */
  freeze(): void;
  /** Thaws a frozen server (SIGCONT). */
  thaw(): void;
  /** Stops the server, keeping its data. */
  pause(): Promise<void>;
  /** Starts the server again on the same port and data. */
  resume(): Promise<void>;
  /** Stops the server and removes its data. */
  stop(): Promise<void>;
}

/** How to run one test server: its command, and how to tell that it answers. */
export interface ServerLaunch {
  /** Names the server in failure messages, like "etcd". */
  name: string;
  port: number;
  command: string;
  args: readonly string[];
  /** Its data folder, removed by `stop`. */
  dir: string;
  /** Whether the server answers yet. */
  ready(): Promise<boolean>;
  timeoutMs: number;
  intervalMs?: number;
}

/**
 * Starts a server process and waits until it answers; the result freezes,
 * pauses, restarts (same command, ports and data) and stops it.
 */
export async function startServer(launch: ServerLaunch): Promise<ServerControl> {
  let proc: ManagedProcess | undefined;
  const start = async (): Promise<void> => {
    const started = startProcess(launch.command, launch.args);
    proc = started;
    await waitFor(
      `${launch.name} on port ${launch.port}`,
      async () => {
        if (started.child.exitCode !== null) {
          throw new Error(`${launch.name} exited early:\n${started.output()}`);
        }
        return (await launch.ready()) ? true : undefined;
      },
      { timeoutMs: launch.timeoutMs, intervalMs: launch.intervalMs ?? 50 },
    );
  };
  await start();
  return {
    freeze() {
      proc?.child.kill("SIGSTOP");
    },
    thaw() {
      proc?.child.kill("SIGCONT");
    },
    async pause() {
      proc?.child.kill("SIGCONT");
      await proc?.stop("SIGTERM");
    },
    resume: start,
    async stop() {
      proc?.child.kill("SIGCONT");
      await proc?.stop("SIGTERM");
      await removeDir(launch.dir);
    },
  };
}
