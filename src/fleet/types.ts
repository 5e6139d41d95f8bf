/**
 * The fleet store: where hosts publish their states, read by `ogygia status`.
 * Layout (the reference's, unchanged): `<namespace>/<host>/<field>`.
 */

import type { BackendConfig } from "../config/index.js";

export type BackendKind = "etcd" | "zookeeper";

/** The reference's three state keys. */
export const STATE_FIELDS = ["current", "booted", "nextboot"] as const;

/** Keys the publisher writes beside the state keys. */
export const PUBLISHER_FIELDS = ["alive", "reboot_required", "updated_at"] as const;

export type FleetField = (typeof STATE_FIELDS)[number] | (typeof PUBLISHER_FIELDS)[number];

export const FLEET_FIELDS: readonly FleetField[] = [...STATE_FIELDS, ...PUBLISHER_FIELDS];

/** One host's keys as stored: field name → raw value. Unknown fields are dropped. */
export type HostValues = Map<FleetField, Uint8Array>;

export interface FleetSnapshot {
  /** Host name (the key segment, as stored) → its values. */
  hosts: Map<string, HostValues>;
  /** Keys under the namespace that do not fit the layout; ignored. */
  strayKeys: number;
}

export interface FleetBackend {
  readonly kind: BackendKind;
  readonly config: BackendConfig;
  /** Reads every host under the namespace. Throws `OgygiaError` on failure. */
  readHosts(): Promise<FleetSnapshot>;
  /** Releases connections; safe to call more than once. */
  close(): Promise<void>;
}

/** The human name of a backend, as used in messages. */
export function backendLabel(kind: BackendKind): string {
  return kind === "etcd" ? "etcd" : "ZooKeeper";
}
