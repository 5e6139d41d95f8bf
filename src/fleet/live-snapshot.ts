/**
 * A fleet snapshot kept current from a stream of key changes, for backends
 * whose watch delivers the changed keys themselves (etcd). Each delivered
 * snapshot is a copy that later changes never touch: a host's values are
 * replaced, never edited in place.
 */

import { splitHostKey } from "./keys.js";
import type { FleetSnapshot, HostValues } from "./types.js";

export class LiveSnapshot {
  readonly #prefix: string;
  #hosts = new Map<string, HostValues>();
  #strayKeys = 0;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** Starts again from a full read. */
  reset(snapshot: FleetSnapshot): void {
    this.#hosts = new Map(snapshot.hosts);
    this.#strayKeys = snapshot.strayKeys;
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
    if (value === null) {
      if (!before?.has(field)) return false;
      const after: HostValues = new Map(before);
      after.delete(field);
      if (after.size === 0) this.#hosts.delete(host);
      else this.#hosts.set(host, after);
      return true;
    }
    const after: HostValues = new Map(before);
    after.set(field, value);
    this.#hosts.set(host, after);
    return true;
  }

  /** The fleet as it stands, as a snapshot later changes leave alone. */
  snapshot(): FleetSnapshot {
    return { hosts: new Map(this.#hosts), strayKeys: this.#strayKeys };
  }
}
