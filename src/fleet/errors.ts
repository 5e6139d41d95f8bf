/**
 * Fleet backend failures, worded as the reference README words them.
 */

import { OgygiaError, errorMessage, redactUrl } from "../core/index.js";
import { backendLabel, type BackendKind } from "./backends.js";
import type { BackendConfig } from "./types.js";

/** `["http://etcd1:2379", "http://etcd2:2379"]`, credentials redacted. */
export function formatEndpoints(endpoints: readonly string[]): string {
  return `[${endpoints.map((e) => JSON.stringify(redactUrl(e))).join(", ")}]`;
}

/** The backend could not be reached within the timeout. */
export function connectError(
  kind: BackendKind,
  config: BackendConfig,
  cause?: unknown,
): OgygiaError {
  const label = backendLabel(kind);
  return new OgygiaError(
    "ERR_OGYGIA_FLEET_CONNECT",
    `failed to connect to ${label} at ${formatEndpoints(config.endpoints)}. ` +
      `Check that the endpoints are reachable and the ${label} service is running. ` +
      `Connection timeout: ${config.timeoutSeconds}s.`,
    { cause },
  );
}

/** The backend answered, but the read failed (permissions, bad namespace, ...). */
export function readError(kind: BackendKind, config: BackendConfig, cause: unknown): OgygiaError {
  const label = backendLabel(kind);
  return new OgygiaError(
    "ERR_OGYGIA_FLEET_READ",
    `failed to read ${config.namespace} from ${label} at ${formatEndpoints(config.endpoints)}: ` +
      `${errorMessage(cause)}.`,
    { cause },
  );
}

/** The backend answered, but refused a write (permissions, quota, ...). */
export function writeError(kind: BackendKind, config: BackendConfig, cause: unknown): OgygiaError {
  const label = backendLabel(kind);
  return new OgygiaError(
    "ERR_OGYGIA_FLEET_WRITE",
    `failed to write under ${config.namespace} in ${label} at ${formatEndpoints(config.endpoints)}: ` +
      `${errorMessage(cause)}.`,
    { cause },
  );
}

/** Thrown by `withDeadline` when time runs out. */
export class DeadlineError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = "DeadlineError";
  }
}

/**
 * Settles like `promise`, or rejects with `DeadlineError` after `ms`. The
 * timer never outlives the promise.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new DeadlineError(ms));
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
