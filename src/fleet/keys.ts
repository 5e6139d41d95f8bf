/**
 * The key layout shared by every backend: `<namespace>/<host>/<field>`.
 */

import { FLEET_FIELDS, type FleetField, type FleetSnapshot, type HostValues } from "./types.js";

const FIELD_SET: ReadonlySet<string> = new Set(FLEET_FIELDS);
const SLASH = 0x2f;

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

/**
 * Builds a snapshot from key/value pairs read under `prefix`. Keys may be
 * bytes (decoded as UTF-8, as etcd returns them) or text.
 */
export function snapshotFromPairs(
  prefix: string,
  pairs: Iterable<{ key: string | Buffer; value: Uint8Array }>,
): FleetSnapshot {
  const hosts: FleetSnapshot["hosts"] = new Map();
  let strayKeys = 0;
  // Keys usually arrive grouped by host (etcd returns them sorted): the
  // previous key's host is checked first, saving a slice and a map lookup.
  let lastHost = "";
  let lastValues: HostValues | undefined;
  const start = prefix.length;
  for (const pair of pairs) {
    // `toString()` without arguments is UTF-8, on Node's shortest path.
    const key = typeof pair.key === "string" ? pair.key : pair.key.toString();
    if (!key.startsWith(prefix)) {
      strayKeys += 1;
      continue;
    }
    let values: HostValues | undefined;
    let field: FleetField;
    if (
      lastValues !== undefined &&
      key.startsWith(lastHost, start) &&
      key.charCodeAt(start + lastHost.length) === SLASH
    ) {
      // The host has no "/", so this is the first slash after the prefix, as below.
      const name = key.slice(start + lastHost.length + 1);
      if (!isFleetField(name)) {
        strayKeys += 1;
        continue;
      }
      values = lastValues;
      field = name;
    } else {
      const parsed = splitHostKey(key.slice(start));
      if (!parsed) {
        strayKeys += 1;
        continue;
      }
      field = parsed.field;
      values = hosts.get(parsed.host);
      if (!values) {
        values = new Map();
        hosts.set(parsed.host, values);
      }
      lastHost = parsed.host;
      lastValues = values;
    }
    values.set(field, pair.value);
  }
  return { hosts, strayKeys };
}
