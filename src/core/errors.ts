/**
 * The one user-facing error type. Every failure a user can cause or fix is an
 * `OgygiaError` with a stable code; plain `Error` is for programmer mistakes.
 */

export type OgygiaErrorCode =
  | "ERR_OGYGIA_USAGE"
  | "ERR_OGYGIA_CONFIG_READ"
  | "ERR_OGYGIA_CONFIG_PARSE"
  | "ERR_OGYGIA_CONFIG_INVALID"
  | "ERR_OGYGIA_LOCAL_STATE"
  | "ERR_OGYGIA_FLEET_CONNECT"
  | "ERR_OGYGIA_FLEET_READ"
  | "ERR_OGYGIA_FLEET_WRITE"
  | "ERR_OGYGIA_FLEET_LOCK_TIMEOUT"
  | "ERR_OGYGIA_NIX_STORE_PATH"
  | "ERR_OGYGIA_NIX_HASH"
  | "ERR_OGYGIA_NIX_NAR"
  | "ERR_OGYGIA_NIX_NARINFO"
  | "ERR_OGYGIA_NIX_KEY"
  | "ERR_OGYGIA_NIX_SIGNATURE"
  | "ERR_OGYGIA_NIX_DB"
  | "ERR_OGYGIA_NIX_COMMAND"
  | "ERR_OGYGIA_IRISD"
  | "ERR_OGYGIA_IRISD_CONFIG"
  | "ERR_OGYGIA_IRISD_LISTEN"
  | "ERR_OGYGIA_IRISD_BLOOM"
  | "ERR_OGYGIA_IRISD_PEER"
  | "ERR_OGYGIA_IRISD_CACHE"
  | "ERR_OGYGIA_HTTP"
  | "ERR_OGYGIA_PUBLISH"
  | "ERR_OGYGIA_NEBULA"
  | "ERR_OGYGIA_NEBULA_ADDRESS"
  | "ERR_OGYGIA_DASHBOARD_LISTEN"
  | "ERR_OGYGIA_DASHBOARD_STATE"
  | "ERR_OGYGIA_BUILDERS"
  | "ERR_OGYGIA_IMPACT"
  | "ERR_OGYGIA_IMPACT_IRISD"
  | "ERR_OGYGIA_IMPACT_PATH_UNAVAILABLE"
  | "ERR_OGYGIA_ROLLOUT"
  | "ERR_OGYGIA_UPDATE";

export interface OgygiaErrorOptions {
  /** What the user can do next; printed on its own line by the CLI. */
  hint?: string;
  cause?: unknown;
  /** Process exit code when this error ends the CLI. Defaults to 1. */
  exitCode?: number;
}

export class OgygiaError extends Error {
  readonly code: OgygiaErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: OgygiaErrorCode, message: string, options: OgygiaErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OgygiaError";
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? 1;
  }
}

export function isOgygiaError(value: unknown): value is OgygiaError {
  return value instanceof OgygiaError;
}

/** A Node.js system error (`ENOENT`, `EACCES`, ...). */
export interface SystemError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

/** True when `err` is a Node.js system error with one of the given codes. */
export function hasErrorCode(err: unknown, ...codes: string[]): err is SystemError {
  return (
    err instanceof Error &&
    typeof (err as Partial<SystemError>).code === "string" &&
    codes.includes((err as SystemError).code)
  );
}

/** The message of any thrown value, for wrapping in a user-facing error. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
