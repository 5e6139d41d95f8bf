/**
 * Fleet backends behind one interface. Adapters are loaded lazily: the etcd
 * and ZooKeeper clients cost hundreds of milliseconds to import, and local
 * mode must not pay for them.
 */

import type { OgygiaConfig } from "../config/index.js";
import type { FleetBackend } from "./types.js";

export {
  FLEET_FIELDS,
  PUBLISHER_FIELDS,
  STATE_FIELDS,
  backendLabel,
  type BackendKind,
  type FleetBackend,
  type FleetField,
  type FleetSnapshot,
  type HostValues,
} from "./types.js";
export {
  fieldKey,
  isFleetField,
  isValidHostSegment,
  namespacePrefix,
  snapshotFromPairs,
  splitHostKey,
} from "./keys.js";
export { DeadlineError, connectError, formatEndpoints, readError, withDeadline } from "./errors.js";

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
