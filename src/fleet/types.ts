/**
 * The fleet store: where hosts publish their states, read by `ogygia status`.
 * Layout (the reference's, unchanged): `<namespace>/<host>/<field>`.
 */

import type { BackendKind } from "./backends.js";
import type { FleetCredentials } from "./credentials.js";

export type { BackendKind } from "./backends.js";

/** What a backend needs from its configuration section, defaults filled in. */
export interface BackendConfig {
  endpoints: string[];
  /** Without a trailing slash. */
  namespace: string;
  timeoutSeconds: number;
  /** TLS and authentication files (`ca_file`, `username`, `password_file`, ...), when set. */
  credentials?: FleetCredentials | undefined;
}

/** The reference's three state keys. */
export const STATE_FIELDS = ["current", "booted", "nextboot"] as const;

/** Keys the publisher writes beside the state keys. */
export const PUBLISHER_FIELDS = ["alive", "reboot_required", "updated_at"] as const;

/**
 * Keys tied to a lease beside `alive`, gone when the host's publisher is:
 * `builder`, the host's offer of remote builds (JSON, see src/builders).
 */
export const LEASED_FIELDS = ["builder"] as const;

/** The URL the host's ogygia-irisd serves its peers on (from irisd's configuration). */
export const IRIS_FIELDS = ["iris_url"] as const;

/** The system store path each state runs (`/nix/store/...-nixos-system-...`), beside its revision. */
export const SYSTEM_PATH_FIELDS = ["current_system", "booted_system", "nextboot_system"] as const;

export type SystemPathField = (typeof SYSTEM_PATH_FIELDS)[number];

/** The host's Nebula certificate's facts, JSON (see src/nebula/published.ts). */
export const NEBULA_FIELDS = ["nebula"] as const;

/**
 * The host's update agent (`ogygia update`, src/rollout): written by the
 * agent itself through compare-and-swap, never by the publisher.
 */
export const UPDATE_FIELDS = [
  "update_state",
  "update_target",
  "update_error",
  "update_rollout",
  "update_started_at",
  "update_changed_at",
  "update_finished_at",
] as const;

export type UpdateField = (typeof UPDATE_FIELDS)[number];

export type FleetField =
  | (typeof STATE_FIELDS)[number]
  | (typeof PUBLISHER_FIELDS)[number]
  | (typeof LEASED_FIELDS)[number]
  | (typeof IRIS_FIELDS)[number]
  | (typeof NEBULA_FIELDS)[number]
  | SystemPathField
  | UpdateField;

export const FLEET_FIELDS: readonly FleetField[] = [
  ...STATE_FIELDS,
  ...PUBLISHER_FIELDS,
  ...LEASED_FIELDS,
  ...IRIS_FIELDS,
  ...NEBULA_FIELDS,
  ...SYSTEM_PATH_FIELDS,
  ...UPDATE_FIELDS,
];

/**
 * The fields a publisher writes as ordinary keys: they stay when the host
 * goes away. `alive` is not one of them: it lives and dies with the
 * publisher's lease (etcd) or session (ZooKeeper).
 */
export type StoredField = Exclude<
  FleetField,
  "alive" | (typeof LEASED_FIELDS)[number] | UpdateField
>;

export const STORED_FIELDS: readonly StoredField[] = [
  ...STATE_FIELDS,
  "reboot_required",
  "updated_at",
  ...IRIS_FIELDS,
  ...NEBULA_FIELDS,
  ...SYSTEM_PATH_FIELDS,
];

/** One host's keys as stored: field name → raw value. Unknown fields are dropped. */
export type HostValues = Map<FleetField, Uint8Array>;

export interface FleetSnapshot {
  /** Host name (the key segment, as stored) → its values. */
  hosts: Map<string, HostValues>;
  /** Keys under the namespace that do not fit the layout; ignored. */
  strayKeys: number;
}

/**
 * A value as read into a `FleetTable`: its text when its bytes are
 * printable ASCII (0x20-0x7e, decoded for free), else its bytes.
 */
export type FleetValue = string | Uint8Array;

/**
 * Every host under the namespace as one table, for reading the whole fleet
 * at once (`ogygia status`): no map or buffer per host or key. Host `i`'s
 * value of `FLEET_FIELDS[f]` is `values[i * FLEET_FIELDS.length + f]`
 * (`tableValue` in keys.ts reads it by name).
 */
export interface FleetTable {
  /** Host names (key segments, as stored), each once. */
  hosts: string[];
  values: (FleetValue | undefined)[];
  /** Keys under the namespace that do not fit the layout; ignored. */
  strayKeys: number;
}

/** Receives the results of a `watchHosts`. */
export interface FleetWatchHandlers {
  /** A complete, fresh snapshot: the first one, then one after each change. */
  onSnapshot(snapshot: FleetSnapshot): void;
  /**
   * A read failed. `OgygiaError`s (backend unreachable, read refused) are
   * retried with backoff by the watch itself; anything else is a bug, and
   * the watch stops after reporting it.
   */
  onError(error: unknown): void;
}

/** A running watch; `close` stops it and releases its connection. */
export interface FleetWatch {
  close(): Promise<void>;
}

export interface FleetBackend {
  readonly kind: BackendKind;
  readonly config: BackendConfig;
  /** Reads every host under the namespace. Throws `OgygiaError` on failure. */
  readHosts(): Promise<FleetSnapshot>;
  /** Reads every host under the namespace as one table. Throws `OgygiaError` on failure. */
  readTable(): Promise<FleetTable>;
  /**
   * Delivers a snapshot now and after every change under the namespace
   * (changes close together are coalesced), until closed. At most one read
   * is in flight at a time; failures are retried with bounded backoff.
   */
  watchHosts(handlers: FleetWatchHandlers): FleetWatch;
  /** Releases connections; safe to call more than once. */
  close(): Promise<void>;
}

/** Changes to one host's stored keys: values to write and fields to delete. */
export interface HostChanges {
  put: ReadonlyMap<StoredField, string>;
  delete: readonly StoredField[];
}

export interface PublisherOptions {
  /** The key segment this publisher writes under. */
  host: string;
  /**
   * Seconds after which `alive` disappears when the publisher stops renewing
   * it: the etcd lease TTL, or the ZooKeeper session timeout (the server may
   * round it into its own [min, max] range).
   */
  leaseTtlSeconds: number;
}

/**
 * Writes one host's keys. Every method has a deadline (`timeout_seconds`)
 * and throws `OgygiaError` (`ERR_OGYGIA_FLEET_CONNECT` when the backend
 * cannot be reached, `ERR_OGYGIA_FLEET_WRITE` or `ERR_OGYGIA_FLEET_READ` when
 * it refuses); the caller retries. Calls must not overlap.
 */
export interface FleetPublisher {
  readonly kind: BackendKind;
  readonly config: BackendConfig;
  readonly host: string;
  /** The host's stored keys (`alive` included when present). */
  readHost(): Promise<HostValues>;
  /** Writes and deletes stored keys (never `alive`). */
  write(changes: HostChanges): Promise<void>;
  /**
   * Makes `<namespace>/<host>/alive` exist and be tied to this publisher's
   * liveness (a lease with keepalive, or an ephemeral node), creating the
   * lease or session first if there is none.
   */
  ensureAlive(value: string): Promise<void>;
  /**
   * Renews liveness (etcd: one lease keepalive; ZooKeeper: checks that the
   * node still exists and belongs to this session). False when it is lost
   * (lease expired or revoked, session expired, node gone): call
   * `ensureAlive` again.
   */
  refreshAlive(): Promise<boolean>;
  /**
   * Called when liveness is found lost between calls (a ZooKeeper session
   * expiring or dropping). etcd reports loss through `refreshAlive` only.
   */
  onLivenessLost(listener: (reason: string) => void): void;
  /**
   * Stops publishing. With `revoke`, first revokes the lease or closes the
   * session so that `alive` disappears at once (bounded by the timeout).
   */
  close(options: { revoke: boolean }): Promise<void>;
}
