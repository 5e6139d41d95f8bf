/**
 * What the primary process and its workers say to each other over
 * node:cluster's IPC channel (`serialization: "advanced"`: the validated
 * configuration goes as it is, so a worker never reads the file again).
 */

import type { IrisdConfig } from "./config.js";
import type { BoundAddress, MetricsSnapshot } from "./http/index.js";

/** Primary → worker. */
export type ToWorker =
  | {
      type: "start";
      config: IrisdConfig;
      /** The primary's private Unix socket, for what the worker does not answer itself. */
      privateSocket: string;
      /** This worker's slot, from 0 (in its log lines as `worker`). */
      slot: number;
    }
  | { type: "metrics"; id: number }
  | { type: "stop" };

/** Why a worker could not start, for the primary to report once. */
export interface WorkerFailure {
  code: string;
  message: string;
  hint?: string;
  exitCode: number;
}

/** Worker → primary. */
export type FromWorker =
  /** Listening for messages: the worker's code is loaded (a message sent before would be lost). */
  | { type: "loaded" }
  | { type: "listening"; addresses: BoundAddress[] }
  | { type: "failed"; failure: WorkerFailure }
  | { type: "metrics"; id: number; snapshot: MetricsSnapshot };

function hasType(value: unknown): value is { type: unknown } {
  return value !== null && typeof value === "object" && "type" in value;
}

const TO_WORKER = new Set(["start", "metrics", "stop"]);
const FROM_WORKER = new Set(["loaded", "listening", "failed", "metrics"]);

/** True for a message of the primary (node:cluster's own messages are not handed on; others might be). */
export function isToWorker(value: unknown): value is ToWorker {
  return hasType(value) && typeof value.type === "string" && TO_WORKER.has(value.type);
}

/** True for a message of a worker. */
export function isFromWorker(value: unknown): value is FromWorker {
  return hasType(value) && typeof value.type === "string" && FROM_WORKER.has(value.type);
}
