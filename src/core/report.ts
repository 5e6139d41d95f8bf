/**
 * How a program reports the error that ends it, on stderr: an `OgygiaError`
 * as `error: <message>` (escaped: messages quote untrusted input) and its
 * hint; anything else as a bug with its stack, exit status 70.
 */

import { OgygiaError } from "./errors.js";
import { escapeForTerminal } from "./text.js";

/** Exit status for a bug (sysexits' EX_SOFTWARE). */
export const EXIT_BUG = 70;

export interface ErrorReportOptions {
  /** Written before each first line, e.g. `"ogygia-irisd: "`. */
  prefix?: string;
  /** Whose bug an unexpected error is: `"a bug in ogygia"`; default `"a bug"`. */
  bug?: string;
}

export interface ErrorReport {
  /** The lines for stderr, without newlines. */
  lines: string[];
  exitCode: number;
}

/** The lines and exit status reporting `err`; see the module comment. */
export function errorReport(err: unknown, options: ErrorReportOptions = {}): ErrorReport {
  const prefix = options.prefix ?? "";
  if (err instanceof OgygiaError) {
    const lines = [`${prefix}error: ${escapeForTerminal(err.message)}`];
    if (err.hint) lines.push(`hint: ${err.hint}`);
    return { lines, exitCode: err.exitCode };
  }
  return {
    lines: [
      `${prefix}internal error (${options.bug ?? "a bug"}; please report it):`,
      err instanceof Error ? (err.stack ?? err.message) : String(err),
    ],
    exitCode: EXIT_BUG,
  };
}
