/**
 * The key layout shared by every backend: `<namespace>/<host>/<field>`.
 */

import { FLEET_FIELDS, type FleetField, type FleetSnapshot } from "./types.js";

const FIELD_SET: ReadonlySet<string> = new Set(FLEET_FIELDS);

export function isFleetField(name: string): name is FleetField {
  return FIELD_SET.has(name);
}

/** The key (etcd) or node path (ZooKeeper) of one host's field. */
export function fieldKey(namespace: string, host: string, field: FleetField): string {
  return `${namespace}/${host}/${field}`;
}

/** The prefix under which every host's keys live, with a trailing slash. */
export function namespacePrefix(namespace: string): string {
  return `${namespace}/`;
}

/** Whether a host name can be a key segment: non-empty and without `/`. */
export function isValidHostSegment(host: string): boolean {
  return host !== "" && host !== "." && host !== ".." && !host.includes("/");
}

/**
 * Splits the part of a key after the namespace prefix into host and field.
 * Undefined for keys that do not fit the layout (deeper, shallower, unknown).
 */
export function splitHostKey(rest: string): { host: string; field: FleetField } | undefined {
  const slash = rest.indexOf("/");
  if (slash <= 0) return undefined;
  const host = rest.slice(0, slash);
  const field = rest.slice(slash + 1);
  if (!isFleetField(field) || !isValidHostSegment(host)) return undefined;
  return { host, field };
}

/** Builds a snapshot from key/value pairs read under `prefix`. */
export function snapshotFromPairs(
  prefix: string,
  pairs: Iterable<{ key: string; value: Uint8Array }>,
): FleetSnapshot {
  const hosts: FleetSnapshot["hosts"] = new Map();
  let strayKeys = 0;
  for (const { key, value } of pairs) {
    const parsed = key.startsWith(prefix) ? splitHostKey(key.slice(prefix.length)) : undefined;
    if (!parsed) {
      strayKeys += 1;
      continue;
    }
    let values = hosts.get(parsed.host);
    if (!values) {
      values = new Map();
      hosts.set(parsed.host, values);
    }
    values.set(parsed.field, value);
  }
  return { hosts, strayKeys };
}
