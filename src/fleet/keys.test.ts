import { describe, expect, it } from "vitest";

import {
  SnapshotBuilder,
  TableBuilder,
  fieldKey,
  snapshotFromPairs,
  splitHostKey,
  tableFromSnapshot,
  tableValue,
} from "./keys.js";
import type { FleetTable } from "./types.js";

/** `table` with its text values as bytes, as `tableFromSnapshot` holds them. */
function asBytes(table: FleetTable): FleetTable {
  return {
    ...table,
    values: table.values.map((v) => (typeof v === "string" ? Buffer.from(v) : v)),
  };
}

const value = (text: string): Uint8Array => Buffer.from(text);

describe("key layout", () => {
  it("builds <namespace>/<host>/<field>", () => {
    expect(fieldKey("/nixos/versions", "web01", "nextboot")).toBe("/nixos/versions/web01/nextboot");
  });

  it("splits host and field, refusing other shapes", () => {
    expect(splitHostKey("web01/current")).toEqual({ host: "web01", field: "current" });
    expect(splitHostKey("web01/current/extra")).toBeUndefined();
    expect(splitHostKey("web01")).toBeUndefined();
    expect(splitHostKey("/current")).toBeUndefined();
    expect(splitHostKey("web01/colour")).toBeUndefined();
    expect(splitHostKey("../current")).toBeUndefined();
  });

  it("groups pairs by host and counts stray keys", () => {
    const snapshot = snapshotFromPairs("/ns/", [
      { key: "/ns/web01/current", value: value("a") },
      { key: "/ns/web01/booted", value: value("b") },
      { key: "/ns/web02/nextboot", value: value("c") },
      { key: "/ns/web02", value: value("stray") },
      { key: "/ns/web02/deep/current", value: value("stray") },
      { key: "/other/web03/current", value: value("stray") },
    ]);
    expect([...snapshot.hosts.keys()]).toEqual(["web01", "web02"]);
    expect(snapshot.hosts.get("web01")?.get("booted")).toEqual(value("b"));
    expect(snapshot.strayKeys).toBe(3);
  });

  it("decodes byte keys as UTF-8, as etcd returns them", () => {
    const snapshot = snapshotFromPairs("/ns/", [
      { key: Buffer.from("/ns/東京/current"), value: value("a") },
      {
        key: Buffer.from([...Buffer.from("/ns/x"), 0xff, ...Buffer.from("/booted")]),
        value: value("b"),
      },
      { key: "/ns/web01/current", value: value("c") },
    ]);
    expect([...snapshot.hosts.keys()]).toEqual(["東京", "x\ufffd", "web01"]);
  });

  it("groups keys exactly as splitting each one does, in any order", () => {
    // The host of the previous key is tried first; these keys trip over a
    // naive prefix check (web0 before web01, stray keys between a host's).
    const keys = [
      "/ns/web0/current",
      "/ns/web01/current",
      "/ns/web0/booted",
      "/ns/web0",
      "/ns/web0/",
      "/ns/web0/current/extra",
      "/ns/web0/colour",
      "/ns/web0/nextboot",
      "/ns/web0x/alive",
      "/ns//current",
      "/ns/../current",
      "/ns/./booted",
      "/ns/web01/updated_at",
      "/ns/web01/",
      "/ns/web01/reboot_required",
      "/ns-web0/current",
      "/nsweb0/current",
      "/ns/web0/current",
    ];
    const pairs = keys.map((key, i) => ({ key, value: value(String(i)) }));
    const reference = (input: typeof pairs) => {
      const hosts = new Map<string, Map<string, Uint8Array>>();
      let strayKeys = 0;
      for (const { key, value: v } of input) {
        const parsed = key.startsWith("/ns/") ? splitHostKey(key.slice(4)) : undefined;
        if (!parsed) {
          strayKeys += 1;
          continue;
        }
        if (!hosts.has(parsed.host)) hosts.set(parsed.host, new Map());
        hosts.get(parsed.host)?.set(parsed.field, v);
      }
      return { hosts, strayKeys };
    };
    for (const order of [pairs, [...pairs].reverse()]) {
      const snapshot = snapshotFromPairs("/ns/", order);
      expect(snapshot).toEqual(reference(order));
      expect([...snapshot.hosts.keys()]).toEqual([...reference(order).hosts.keys()]);
      // The byte-level builder (etcd's visited range) agrees, keys packed in
      // one buffer with their values as a response holds them.
      const builder = new SnapshotBuilder("/ns/");
      const chunks: Buffer[] = [Buffer.from("junk")];
      let at = 4;
      const spans: [number, number, number, number][] = [];
      for (const { key, value: v } of order) {
        const k = Buffer.from(key);
        chunks.push(k, Buffer.from(v));
        spans.push([at, at + k.length, at + k.length, at + k.length + v.length]);
        at += k.length + v.length;
      }
      const packed = Buffer.concat(chunks);
      for (const [ks, ke, vs, ve] of spans) builder.add(packed, ks, ke, vs, ve);
      const built = builder.snapshot();
      // So does the table, its values as text or (not printable ASCII) bytes.
      const tableBuilder = new TableBuilder("/ns/");
      for (const [ks, ke, vs, ve] of spans) tableBuilder.add(packed, ks, ke, vs, ve);
      expect(asBytes(tableBuilder.table())).toEqual(tableFromSnapshot(snapshot));
      expect(built.strayKeys).toBe(snapshot.strayKeys);
      expect([...built.hosts.keys()]).toEqual([...snapshot.hosts.keys()]);
      for (const [host, values] of snapshot.hosts) {
        const other = built.hosts.get(host);
        // The same fields (the builder lists them in FLEET_FIELDS' order).
        expect([...(other?.keys() ?? [])].sort()).toEqual([...values.keys()].sort());
        for (const [field, raw] of values) {
          expect(Buffer.from(other?.get(field) ?? [])).toEqual(Buffer.from(raw));
        }
      }
    }
  });

  it("builds from bytes with UTF-8 hosts and invalid sequences as snapshotFromPairs does", () => {
    const keys = [
      Buffer.from("/ns/東京/current"),
      Buffer.concat([Buffer.from("/ns/x"), Buffer.from([0xff]), Buffer.from("/booted")]),
      Buffer.from("/ns/東京/booted"),
    ];
    const builder = new SnapshotBuilder("/ns/");
    const packed = Buffer.concat(keys);
    let at = 0;
    for (const key of keys) {
      builder.add(packed, at, at + key.length, at, at + 1);
      at += key.length;
    }
    const built = builder.snapshot();
    const reference = snapshotFromPairs(
      "/ns/",
      keys.map((key) => ({ key, value: key.subarray(0, 1) })),
    );
    const tableBuilder = new TableBuilder("/ns/");
    at = 0;
    for (const key of keys) {
      tableBuilder.add(packed, at, at + key.length, at, at + 1);
      at += key.length;
    }
    expect(asBytes(tableBuilder.table())).toEqual(tableFromSnapshot(reference));
    expect([...built.hosts.keys()]).toEqual(["東京", "x\ufffd"]);
    expect([...built.hosts.keys()]).toEqual([...reference.hosts.keys()]);
    expect([...(built.hosts.get("東京")?.keys() ?? [])]).toEqual(["current", "booted"]);
  });

  it("reads values as text when printable ASCII, else as their bytes", () => {
    const values = ["abc 123", "", " x", "tab\there", "é", "\u0000"];
    const keys = values.map((_, i) => `/ns/h${i}/current`);
    const packed = Buffer.concat(
      keys.flatMap((k, i) => [Buffer.from(k), Buffer.from(values[i] ?? "")]),
    );
    const builder = new TableBuilder("/ns/");
    let at = 0;
    for (const [i, key] of keys.entries()) {
      const end = at + Buffer.byteLength(key);
      const valueEnd = end + Buffer.byteLength(values[i] ?? "");
      builder.add(packed, at, end, end, valueEnd);
      at = valueEnd;
    }
    const table = builder.table();
    expect(table.hosts).toEqual(["h0", "h1", "h2", "h3", "h4", "h5"]);
    expect(table.hosts.map((_, row) => tableValue(table, row, "current"))).toEqual([
      "abc 123",
      "",
      " x",
      Buffer.from("tab\there"),
      Buffer.from("é"),
      Buffer.from("\u0000"),
    ]);
  });
});
