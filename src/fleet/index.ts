/**
 * Fleet backends behind one interface, chosen from the registry
 * (`registry.ts`). Adapters are loaded lazily: the backends' clients cost
 * hundreds of milliseconds to import, and local mode must not pay for them.
 */

import { configuredBackend, type FleetConfig } from "./registry.js";
import type { FleetBackend, FleetPublisher, FleetSnapshot, PublisherOptions } from "./types.js";
import type { BulkReadOptions, ZkBulkReader } from "./zookeeper.js";
import type { ZkSession } from "./zookeeper-session.js";
import type { ZkWire } from "./zookeeper-wire.js";
import type * as GrantModuleType from "./grant.js";

export {
  LEASED_FIELDS,
  PUBLISHER_FIELDS,
  STATE_FIELDS,
  STORED_FIELDS,
  SYSTEM_PATH_FIELDS,
  NEBULA_FIELDS,
  type SystemPathField,
  UPDATE_FIELDS,
  type UpdateField,
  type FleetBackend,
  type FleetField,
  type FleetPublisher,
  type FleetSnapshot,
  type FleetTable,
  type FleetValue,
  type FleetWatch,
  type HostChanges,
  type HostValues,
  type PublisherOptions,
  type StoredField,
} from "./types.js";
export { BACKEND_NAMES } from "./backends.js";
export {
  BACKENDS,
  backendLabel,
  backendPrecedence,
  configuredBackend,
  describeBackends,
  type BackendKind,
} from "./registry.js";
export {
  FIELD_COUNT,
  fieldIndex,
  fieldKey,
  isValidHostSegment,
  rolloutPrefix,
  tableFromSnapshot,
  tableValue,
} from "./keys.js";
export { connectError } from "./errors.js";
export {
  checkCredentialFiles,
  resolveCredentialPath,
  type CredentialProblem,
  type FleetCredentials,
} from "./credentials.js";

/**
 * Opens the configured backend (the first registered one the configuration
 * has a section for), or undefined when none is configured.
 */
export async function openFleetBackend(config: FleetConfig): Promise<FleetBackend | undefined> {
  const selected = configuredBackend(config);
  if (!selected) return undefined;
  return (await selected.entry.load()).open(selected.settings);
}

/**
 * Opens a publisher for one host on the configured backend (chosen as for
 * reading), or undefined when none is configured.
 */
export async function openFleetPublisher(
  config: FleetConfig,
  options: PublisherOptions,
): Promise<FleetPublisher | undefined> {
  const selected = configuredBackend(config);
  if (!selected) return undefined;
  return (await selected.entry.load()).openPublisher(selected.settings, options);
}
export type { ZkSession } from "./zookeeper-session.js";

/**
 * Connects a raw ZooKeeper session, for tests and benchmarks that drive the
 * server directly. Loaded on call, like the adapters, to keep the client out
 * of start-up.
 */
export async function connectZkSession(
  endpoints: readonly string[],
  timeoutMs: number,
): Promise<ZkSession> {
  const session = await import("./zookeeper-session.js");
  return session.ZkSession.connect(endpoints, timeoutMs);
}

export type { ZkWire } from "./zookeeper-wire.js";
export type { BulkReadOptions, ZkBulkReader } from "./zookeeper.js";

/**
 * Opens a bulk-read ZooKeeper connection (`multiRead`), for tests and
 * benchmarks. Loaded on call, like the adapters.
 */
export async function connectZkWire(
  endpoints: readonly string[],
  timeoutMs: number,
): Promise<ZkWire> {
  const wire = await import("./zookeeper-wire.js");
  return wire.ZkWire.connect(endpoints, timeoutMs);
}

/** Reads a ZooKeeper namespace in bulk through `reader`, as `ogygia status` does; for tests. */
export async function readZooKeeperBulk(
  reader: ZkBulkReader,
  namespace: string,
  options?: BulkReadOptions,
): Promise<FleetSnapshot> {
  const zookeeper = await import("./zookeeper.js");
  return zookeeper.readTreeBulk(reader, namespace, options);
}

export { openCoordinator } from "./registry.js";
export type { Lease } from "./coordination.js";

export type { GrantResult } from "./grant.js";
type GrantModule = typeof GrantModuleType;

/** `ogygia fleet grant`: loads the grant module (and the backend's client) on call. */
export async function loadFleetGrants(): Promise<GrantModule> {
  return import("./grant.js");
}
export { type Coordinator, type Revision, type WatchEvent } from "./coordination.js";
export type { CasManyResult, KeyChange } from "./coordination.js";
