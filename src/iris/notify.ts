/**
 * systemd readiness notification (`Type=notify`), at the platform edge.
 *
 * Node cannot send a unix datagram, so the daemon runs `systemd-notify
 * --pid=<our pid> READY=1` (or `STOPPING=1`) when `NOTIFY_SOCKET` is set.
 * Run as root, systemd-notify sends the message with our pid in its
 * credentials, so `NotifyAccess=main` works; unprivileged it cannot, and the
 * unit needs `NotifyAccess=all` (which works in both cases). A missing or
 * failing systemd-notify is logged, never fatal: systemd then reports the
 * start as timed out, and the log says why.
 */

import { spawn } from "node:child_process";

import { errorMessage } from "../core/index.js";
import type { Logger } from "../log/index.js";

const NOTIFY_TIMEOUT_MS = 5000;

export type NotifyState = "READY=1" | "STOPPING=1";

/** Tells systemd `state` when `NOTIFY_SOCKET` is set; resolves true when the message went out. */
export function notifySystemd(
  state: NotifyState,
  options: { env?: NodeJS.ProcessEnv; log: Logger; command?: string },
): Promise<boolean> {
  const env = options.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === "") return Promise.resolve(false);
  const command = options.command ?? "systemd-notify";
  return new Promise((resolve) => {
    const child = spawn(command, [`--pid=${process.pid}`, state], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), NOTIFY_TIMEOUT_MS);
    const fail = (reason: string): void => {
      options.log.warn(
        { notifySocket: socket, state, err: reason },
        `could not notify systemd (${state}): ${reason}`,
      );
      resolve(false);
    };
    child.once("error", (err) => {
      clearTimeout(timer);
      fail(`${command}: ${errorMessage(err)}`);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        options.log.debug({ notifySocket: socket, state }, "notified systemd");
        resolve(true);
      } else {
        fail(`${command} exited with ${code ?? signal ?? "?"}: ${stderr.trim()}`);
      }
    });
  });
}
