/**
 * Fleet backends behind one interface, chosen from the registry
 * (`registry.ts`). Adapters are loaded lazily: the backends' clients cost
 * hundreds of milliseconds to import, and local mode must not pay for them.
 */

import { configuredBackend, type FleetConfig } from "./registry.js";
import type { FleetBackend, FleetPublisher, PublisherOptions } from "./types.js";

export {
  FLEET_FIELDS,
  PUBLISHER_FIELDS,
  STATE_FIELDS,
  STORED_FIELDS,
  type BackendConfig,
  type FleetBackend,
  type FleetField,
  type FleetPublisher,
  type FleetSnapshot,
  type FleetWatch,
  type FleetWatchHandlers,
  type HostChanges,
  type HostValues,
  type PublisherOptions,
  type StoredField,
} from "./types.js";
export {
  BACKENDS,
  backendEntry,
  backendLabel,
  backendPrecedence,
  configuredBackend,
  describeBackends,
  type BackendAdapter,
  type BackendEntry,
  type BackendKind,
  type FleetConfig,
} from "./registry.js";
export {
  fieldKey,
  isFleetField,
  isValidHostSegment,
  namespacePrefix,
  snapshotFromPairs,
  splitHostKey,
} from "./keys.js";
export {
  DeadlineError,
  connectError,
  formatEndpoints,
  readError,
  withDeadline,
  writeError,
} from "./errors.js";

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
export {
  openCoordinator,
  type AcquireOptions,
  type CallOptions,
  type CasResult,
  type Coordinator,
  type Entry,
  type Expected,
  type Lease,
  type LeaseOptions,
  type Lock,
  type LockHolder,
  type LockOptions,
  type Read,
  type Revision,
  type SetOptions,
  type WatchEvent,
  type WatchOptions,
} from "./coordination.js";
