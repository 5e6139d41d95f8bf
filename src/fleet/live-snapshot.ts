/**
 * A fleet snapshot kept current from a stream of key changes, for backends
 * whose watch delivers the changed keys themselves (etcd). Each delivered
 * snapshot is a copy that later changes never touch: a host's values are
 * copied on their first change after a snapshot (a copy per host and
 * snapshot, not per changed key: a host publishes several keys at once),
 * and only that copy, which no snapshot holds yet, is edited in place.
 */

import { splitHostKey } from "./keys.js";
import type { FleetSnapshot, HostValues } from "./types.js";

export class LiveSnapshot {
  readonly #prefix: string;
  #hosts = new Map<string, HostValues>();
  #strayKeys = 0;
  /** Hosts whose values were copied since the last snapshot: no snapshot holds them. */
  #copied = new Set<string>();

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** Starts again from a full read. */
  reset(snapshot: FleetSnapshot): void {
    this.#hosts = new Map(snapshot.hosts);
    this.#strayKeys = snapshot.strayKeys;
    this.#copied.clear();
  }

  /**
   * Applies one change: a put (`value`) or a delete (`null`). Keys outside
   * the layout are ignored (a full read counts them). True when the
   * snapshot changed.
   */
  apply(key: string, value: Uint8Array | null): boolean {
    if (!key.startsWith(this.#prefix)) return false;
    const parsed = splitHostKey(key.slice(this.#prefix.length));
    if (!parsed) return false;
    const { host, field } = parsed;
    const before = this.#hosts.get(host);
    if (value === null && !before?.has(field)) return false;
    let values = before;
    if (values === undefined || !this.#copied.has(host)) {
      values = new Map(before);
      this.#hosts.set(host, values);
      this.#copied.add(host);
    }
    if (value === null) {
      values.delete(field);
      if (values.size === 0) {
        this.#hosts.delete(host);
        this.#copied.delete(host);
      }
    } else {
      values.set(field, value);
    }
    return true;
  }

  /** The fleet as it stands, as a snapshot later changes leave alone. */
  snapshot(): FleetSnapshot {
    this.#copied.clear();
    return { hosts: new Map(this.#hosts), strayKeys: this.#strayKeys };
  }
}
