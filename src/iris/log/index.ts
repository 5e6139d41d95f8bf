/**
 * The daemon's structured log: one JSON object per line on stderr (pino),
 * where systemd's journal or any log shipper picks it up. This module is
 * the only importer of pino in `src/iris/`.
 *
 * Requests are logged at `debug` only: at `info` the hot path does not
 * touch the logger (a JSON line per request would cost more than the
 * request). Writes are synchronous so nothing is lost at exit; at `info`
 * they are rare.
 */

import { pino } from "pino";

/** The levels `[server] log_level` accepts, most severe first. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface IrisLogger {
  fatal(fields: object, message: string): void;
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
  isLevelEnabled(level: string): boolean;
}

/** A logger writing to stderr (`fd 2`), or to `fd` when given. */
export function createIrisLogger(level: LogLevel, fd = 2): IrisLogger & { level: string } {
  return pino(
    {
      name: "ogygia-irisd",
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: fd, sync: true }),
  );
}

/** Fields describing an error for a log line: message, code, hint, cause. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { err: String(err) };
  const fields: Record<string, unknown> = { err: err.message };
  const { code, hint } = err as { code?: unknown; hint?: unknown };
  if (typeof code === "string") fields.code = code;
  if (typeof hint === "string") fields.hint = hint;
  if (err.cause instanceof Error) fields.cause = err.cause.message;
  return fields;
}
