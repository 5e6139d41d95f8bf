/**
 * The daemon's structured log: one JSON object per line on stderr (pino),
 * where systemd's journal or any log shipper picks it up.
 */

import { pino, type Level } from "pino";

import type { DaemonLogger } from "./daemon.js";

export const LOG_LEVELS: readonly Level[] = ["fatal", "error", "warn", "info", "debug", "trace"];

export function isLogLevel(value: string): value is Level {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** A logger writing synchronously to stderr, so nothing is lost when the process exits. */
export function createLogger(level: Level, host: string): DaemonLogger {
  return pino(
    {
      name: "ogygia-publish",
      level,
      base: { pid: process.pid, host },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 2, sync: true }),
  );
}
