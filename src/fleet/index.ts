/**
 * Fleet backends behind one interface. Adapters are loaded lazily: the etcd
 * and ZooKeeper clients cost hundreds of milliseconds to import, and local
 * mode must not pay for them.
 */

import type { OgygiaConfig } from "../config/index.js";
import type { FleetBackend, FleetPublisher, PublisherOptions } from "./types.js";

export {
  FLEET_FIELDS,
  PUBLISHER_FIELDS,
  STATE_FIELDS,
  STORED_FIELDS,
  backendLabel,
  type BackendKind,
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
export { Backoff, delay, type BackoffOptions } from "./retry.js";

/**
 * Opens the configured backend: etcd when configured (it wins over ZooKeeper),
 * else ZooKeeper, else undefined.
 */
export async function openFleetBackend(config: OgygiaConfig): Promise<FleetBackend | undefined> {
  if (config.etcd) {
    const { openEtcd } = await import("./etcd.js");
    return openEtcd(config.etcd);
  }
  if (config.zookeeper) {
    const { openZooKeeper } = await import("./zookeeper.js");
    return openZooKeeper(config.zookeeper);
  }
  return undefined;
}

/**
 * Opens a publisher for one host on the configured backend (etcd wins over
 * ZooKeeper, as for reading), or undefined when neither is configured.
 */
export async function openFleetPublisher(
  config: OgygiaConfig,
  options: PublisherOptions,
): Promise<FleetPublisher | undefined> {
  if (config.etcd) {
    const { openEtcdPublisher } = await import("./etcd.js");
    return openEtcdPublisher(config.etcd, options);
  }
  if (config.zookeeper) {
    const { openZooKeeperPublisher } = await import("./zookeeper.js");
    return openZooKeeperPublisher(config.zookeeper, options);
  }
  return undefined;
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
