/**
 * The key layout shared by every backend: `<namespace>/<host>/<field>`.
 */

import path from "node:path";

import {
  FLEET_FIELDS,
  type FleetField,
  type FleetSnapshot,
  type FleetTable,
  type FleetValue,
  type HostValues,
} from "./types.js";

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

/**
 * Where the rollout's keys live (docs/updates.md, "Keys"): beside the
 * namespace, never inside it, `<parent of namespace>/rollout/<last segment>`
 * (`/nixos/versions` → `/nixos/rollout/versions`). Here, not in `src/rollout`,
 * because `ogygia fleet grant` gives hosts access to it.
 */
export function rolloutPrefix(namespace: string): string {
  const parent = path.posix.dirname(namespace);
  return `${parent === "/" ? "" : parent}/rollout/${path.posix.basename(namespace)}`;
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

/**
 * Builds a snapshot from keys and values given as byte ranges of a response
 * (etcd's range, visited without an object per key), with the same rules
 * as `snapshotFromPairs`: a key counts when it is `<prefix><host>/<field>`
 * with a valid host segment and a known field, else it is a stray key.
 * Keys are split by `TableBuilder`'s `HostKeySlots`; values stay bytes.
 */
export class SnapshotBuilder {
  readonly #slots: HostKeySlots;
  readonly #values: Buffer[] = [];

  constructor(prefix: string) {
    this.#slots = new HostKeySlots(prefix);
  }

  /** Adds the key [keyStart, keyEnd) and value [valueStart, valueEnd) of `buf`. */
  readonly add = (
    buf: Buffer,
    keyStart: number,
    keyEnd: number,
    valueStart: number,
    valueEnd: number,
  ): void => {
    const slot = this.#slots.slot(buf, keyStart, keyEnd);
    if (slot >= 0) this.#values[slot] = buf.subarray(valueStart, valueEnd);
  };

  snapshot(): FleetSnapshot {
    const hosts: FleetSnapshot["hosts"] = new Map();
    for (const [row, host] of this.#slots.hosts.entries()) {
      const values: HostValues = new Map();
      for (const [column, field] of FLEET_FIELDS.entries()) {
        const value = this.#values[row * FIELD_COUNT + column];
        if (value !== undefined) values.set(field, value);
      }
      hosts.set(host, values);
    }
    return { hosts, strayKeys: this.#slots.strayKeys };
  }
}

/** Values per host in a `FleetTable`: one per known field. */
export const FIELD_COUNT = FLEET_FIELDS.length;

const FIELD_INDEX: ReadonlyMap<FleetField, number> = new Map(
  FLEET_FIELDS.map((field, i) => [field, i] as const),
);

/** The column of `field` in a `FleetTable` row (`FLEET_FIELDS`' order). */
export function fieldIndex(field: FleetField): number {
  const index = FIELD_INDEX.get(field);
  if (index === undefined) throw new Error(`unknown fleet field ${field}`);
  return index;
}

/** Host `row`'s value of `field` in `table`, or undefined. */
export function tableValue(
  table: FleetTable,
  row: number,
  field: FleetField,
): FleetValue | undefined {
  return table.values[row * FIELD_COUNT + fieldIndex(field)];
}

/** The table of a snapshot: its hosts in order, values as bytes. */
export function tableFromSnapshot(snapshot: FleetSnapshot): FleetTable {
  const hosts: string[] = [];
  const values: (FleetValue | undefined)[] = [];
  for (const [host, hostValues] of snapshot.hosts) {
    const base = hosts.length * FIELD_COUNT;
    hosts.push(host);
    values.length = base + FIELD_COUNT;
    for (const [field, value] of hostValues) values[base + fieldIndex(field)] = value;
  }
  return { hosts, values, strayKeys: snapshot.strayKeys };
}

/** Printable ASCII from `lastIndex` on: a sticky test moves `lastIndex` to its end. */
const PRINTABLE_RUN = /[\x20-\x7e]*/y;
const NON_ASCII = /[\x80-\xff]/;

/**
 * The one key splitter of the byte builders: maps each key of a response
 * (a byte range of `buf`) to its slot, `row * FIELD_COUNT + column`, in a
 * table of hosts in the order first seen, by the rules of
 * `snapshotFromPairs`; -1 (counted as stray) for a key outside the layout.
 * The response is read as one latin1 string (one character per byte), so
 * keys are compared by native string operations: this runs 30,000 times
 * for 10,000 hosts in code not yet optimised, where a loop over bytes
 * costs far more.
 */
class HostKeySlots {
  /** The prefix's UTF-8 bytes, as latin1 text. */
  readonly #prefix: string;
  readonly hosts: string[] = [];
  readonly #rows = new Map<string, number>();
  strayKeys = 0;
  #buf: Buffer | undefined;
  /** `buf` as latin1 text. */
  text = "";
  // The previous key's host: keys come grouped by host (etcd returns them
  // sorted), so most keys only compare it.
  #lastHost = "";
  #lastBase = -1;

  constructor(prefix: string) {
    this.#prefix = Buffer.from(prefix).toString("latin1");
  }

  /** The slot of the key [keyStart, keyEnd) of `buf`, or -1. */
  slot(buf: Buffer, keyStart: number, keyEnd: number): number {
    if (buf !== this.#buf) {
      this.#buf = buf;
      this.text = buf.toString("latin1");
      this.#lastBase = -1;
    }
    const text = this.text;
    const prefix = this.#prefix;
    const hostStart = keyStart + prefix.length;
    if (hostStart >= keyEnd || !text.startsWith(prefix, keyStart)) {
      this.strayKeys += 1;
      return -1;
    }
    let base = this.#lastBase;
    let column: number;
    // The previous key's host and its slash: one comparison for most keys.
    const last = this.#lastHost;
    if (base >= 0 && text.startsWith(last, hostStart)) {
      column = matchFieldText(text, hostStart + last.length, keyEnd);
    } else {
      // The host ends at the first slash after the prefix (found before the
      // next key's prefix at the latest); a field name has none.
      const slash = text.indexOf("/", hostStart);
      column = slash > hostStart && slash < keyEnd ? matchFieldText(text, slash + 1, keyEnd) : -1;
      if (column >= 0) {
        const raw = text.slice(hostStart, slash);
        const host = NON_ASCII.test(raw) ? buf.toString("utf8", hostStart, slash) : raw;
        if (!isValidHostSegment(host)) {
          this.strayKeys += 1;
          return -1;
        }
        const row = this.#rows.get(host);
        if (row === undefined) {
          base = this.hosts.length * FIELD_COUNT;
          this.#rows.set(host, this.hosts.length);
          this.hosts.push(host);
        } else {
          base = row * FIELD_COUNT;
        }
        // Compared as latin1 text (the host's bytes, whatever they decode
        // to) with its slash.
        this.#lastHost = text.slice(hostStart, slash + 1);
        this.#lastBase = base;
      }
    }
    if (column < 0) {
      this.strayKeys += 1;
      return -1;
    }
    return base + column;
  }
}

/**
 * Builds a `FleetTable` from keys and values given as byte ranges of a
 * response (etcd's range, visited without an object per key), by the rules
 * of `snapshotFromPairs`. Printable ASCII values (nearly all) are cut out of
 * the latin1 text; anything else stays bytes.
 */
export class TableBuilder {
  readonly #slots: HostKeySlots;
  readonly #values: (FleetValue | undefined)[] = [];

  constructor(prefix: string) {
    this.#slots = new HostKeySlots(prefix);
  }

  /** Adds the key [keyStart, keyEnd) and value [valueStart, valueEnd) of `buf`. */
  readonly add = (
    buf: Buffer,
    keyStart: number,
    keyEnd: number,
    valueStart: number,
    valueEnd: number,
  ): void => {
    const slots = this.#slots;
    const slot = slots.slot(buf, keyStart, keyEnd);
    if (slot < 0) return;
    const text = slots.text;
    PRINTABLE_RUN.lastIndex = valueStart;
    PRINTABLE_RUN.test(text);
    this.#values[slot] =
      PRINTABLE_RUN.lastIndex >= valueEnd
        ? text.slice(valueStart, valueEnd)
        : buf.subarray(valueStart, valueEnd);
  };

  table(): FleetTable {
    const hosts = this.#slots.hosts;
    // A row's missing values past the last one set are holes: undefined too.
    this.#values.length = hosts.length * FIELD_COUNT;
    return { hosts, values: this.#values, strayKeys: this.#slots.strayKeys };
  }
}

/** The column of the known field named by [start, end) of `text`, or -1. */
function matchFieldText(text: string, start: number, end: number): number {
  const length = end - start;
  for (let i = 0; i < FIELD_COUNT; i++) {
    const name = FLEET_FIELDS[i] ?? "";
    if (name.length === length && text.startsWith(name, start)) return i;
  }
  return -1;
}
