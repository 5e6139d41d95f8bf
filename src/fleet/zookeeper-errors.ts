/**
 * ZooKeeper failures shared by both ZooKeeper clients (`ZkSession` over
 * `node-zookeeper-client`, and `ZkWire` for bulk reads), with no import of
 * the client library, so that a bulk read never loads it.
 */

import { OgygiaError, errorMessage } from "../core/index.js";
import { DeadlineError, connectError, readError, writeError } from "./errors.js";
import type { BackendConfig } from "./types.js";

/** ZooKeeper's error codes that the adapters tell apart (`KeeperException.Code`). */
export const ZK_CODES = {
  CONNECTION_LOSS: -4,
  MARSHALLING_ERROR: -5,
  UNIMPLEMENTED: -6,
  BAD_ARGUMENTS: -8,
  NO_NODE: -101,
  NO_AUTH: -102,
  SESSION_EXPIRED: -112,
  AUTH_FAILED: -115,
} as const;

const CODE_NAMES = new Map<number, string>(
  Object.entries(ZK_CODES).map(([name, code]) => [code, name]),
);

/** The session ended (expired, closed or disconnected) before the call finished. */
export class ZkSessionLostError extends Error {
  constructor(reason: string) {
    super(`ZooKeeper session lost: ${reason}`);
    this.name = "ZkSessionLostError";
  }
}

/** The server answered a request with an error code. */
export class ZkServerError extends Error {
  readonly code: number;
  constructor(code: number, path?: string) {
    // Worded as node-zookeeper-client words its exceptions.
    super(
      `Exception: ${CODE_NAMES.get(code) ?? "ERROR"}[${code}]${path === undefined ? "" : ` at ${path}`}`,
    );
    this.name = "ZkServerError";
    this.code = code;
  }
}

/** The ZooKeeper error code an error carries, if any. */
export function zkCode(err: unknown): number | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "number"
    ? err.code
    : undefined;
}

/** The server could not be reached in time, or the session was lost: worth retrying on a new session. */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof DeadlineError || err instanceof ZkSessionLostError) return true;
  const code = zkCode(err);
  return code === ZK_CODES.CONNECTION_LOSS || code === ZK_CODES.SESSION_EXPIRED;
}

/**
 * A failed call on a session as the user sees it. A call that timed out
 * drops the session through `drop` first: a server that stopped answering
 * may never tell the client, and a new session may reach another server of
 * the ensemble.
 */
export function sessionFailure(
  err: unknown,
  what: "read" | "write",
  config: BackendConfig,
  drop: () => void,
): OgygiaError {
  if (err instanceof OgygiaError) return err;
  if (isConnectionFailure(err)) {
    if (err instanceof DeadlineError) drop();
    return connectError("zookeeper", config, err);
  }
  const cause = new Error(errorMessage(err));
  return what === "read"
    ? readError("zookeeper", config, cause)
    : writeError("zookeeper", config, cause);
}
