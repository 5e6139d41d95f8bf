/**
 * The programs' structured log: one JSON object per line on stderr (pino),
 * where systemd's journal or any log shipper picks it up. `ogygia publish`
 * and `ogygia-irisd` both log through this module, the only importer of
 * pino; they differ only in the `name` and base fields they pass.
 *
 * Nothing outside the daemons may import it statically: the CLI loads it
 * (and pino) only when `ogygia publish` starts its daemon.
 *
 * Writes are synchronous so nothing is lost when the process exits. irisd
 * logs requests at `debug` only: at `info` its hot path does not touch the
 * logger.
 */

import { pino } from "pino";

/** The levels a line is written at, most severe first. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What a logger can be set to: a level, or `silent` to write nothing. */
export const LOG_THRESHOLDS = [...LOG_LEVELS, "silent"] as const;
export type LogThreshold = (typeof LOG_THRESHOLDS)[number];

/** True when `value` is one of `LOG_LEVELS` (not `silent`). */
export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** True when `value` is one of `LOG_THRESHOLDS`. */
export function isLogThreshold(value: string): value is LogThreshold {
  return (LOG_THRESHOLDS as readonly string[]).includes(value);
}

export interface Logger {
  fatal(fields: object, message: string): void;
  error(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
  isLevelEnabled(level: string): boolean;
}

export interface LoggerOptions {
  /** The program, written as `name` on every line. */
  name: string;
  /** Least severe level written. */
  level: LogThreshold;
  /** Fields written on every line after `pid` (e.g. `{ host }`). */
  base?: Record<string, unknown>;
}

/** A logger writing JSON lines synchronously to stderr. */
export function createLogger(options: LoggerOptions): Logger & { level: string } {
  return pino(
    {
      name: options.name,
      level: options.level,
      base: { pid: process.pid, ...options.base },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 2, sync: true }),
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
