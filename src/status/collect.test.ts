import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { tableFromSnapshot, type FleetField, type FleetSnapshot } from "../fleet/index.js";
import type { LocalStates } from "../system/index.js";
import {
  buildReport,
  collectStatus,
  compareRows,
  isLocalHost,
  sortRows,
  trimDomain,
  type HostStatus,
  type ReportInputs,
} from "./collect.js";
import { fastSortKey } from "../core/index.js";
import { tempDir } from "../../test/support/temp.js";

describe("trimDomain", () => {
  it("removes the domain suffix, ignoring case", () => {
    expect(trimDomain("web01.dc1.example.com", "example.com")).toBe("web01.dc1");
    expect(trimDomain("WEB01.DC1.EXAMPLE.COM", "example.com")).toBe("WEB01.DC1");
  });

  it("leaves other names alone", () => {
    expect(trimDomain("web01.example.org", "example.com")).toBe("web01.example.org");
    expect(trimDomain("notexample.com", "example.com")).toBe("notexample.com");
    expect(trimDomain("example.com", "example.com")).toBe("example.com");
    expect(trimDomain("web01.example.com", undefined)).toBe("web01.example.com");
  });
});

describe("isLocalHost", () => {
  const local = "web01.dc1.example.com";
  it("matches the full or short name in any case", () => {
    expect(isLocalHost("web01.dc1.example.com", local, "example.com")).toBe(true);
    expect(isLocalHost("WEB01", local, "example.com")).toBe(true);
    expect(isLocalHost("web01.dc1", local, "example.com")).toBe(true);
  });

  it("does not match other hosts that share a prefix", () => {
    expect(isLocalHost("web01.dc2", local, "example.com")).toBe(false);
    expect(isLocalHost("web011", local, "example.com")).toBe(false);
    expect(isLocalHost("web02.dc1.example.com", local, "example.com")).toBe(false);
  });
});

/** A remote host's row with nothing known but its names. */
function emptyRow(displayName: string, host = displayName): HostStatus {
  return {
    host,
    displayName,
    local: false,
    current: null,
    booted: null,
    nextboot: null,
    unreadable: [],
    online: null,
    rebootRequired: null,
    updatedAt: null,
  };
}

describe("compareRows", () => {
  const row = (displayName: string): HostStatus => emptyRow(displayName);
  it("sorts names with numbers in numeric order", () => {
    const names = ["web10", "db01", "web2", "Web1"].map(row).sort(compareRows);
    expect(names.map((r) => r.displayName)).toEqual(["db01", "Web1", "web2", "web10"]);
  });
});

describe("collectStatus in local-only mode", () => {
  it("reads the three states under --root with no configuration", async () => {
    const root = await tempDir("status");
    const sys = path.join(root, "nix/store/aaaa-nixos-system");
    await mkdir(path.join(sys, "sw/share/ogygia"), { recursive: true });
    await writeFile(path.join(sys, "sw/share/ogygia/build-revision"), "f00dfeedcafe0123456789\n");
    await mkdir(path.join(root, "run"));
    await symlink("/nix/store/aaaa-nixos-system", path.join(root, "run/current-system"));
    const report = await collectStatus({
      root,
      env: { OGYGIA_HOSTNAME: "web01.example.com" },
    });
    expect(report).toMatchObject({
      mode: "local",
      configPath: null,
      namespace: null,
      error: null,
      warnings: [],
      hosts: [
        {
          host: "web01.example.com",
          displayName: "web01.example.com",
          local: true,
          current: "f00dfeedcafe0123456789",
          booted: null,
          nextboot: null,
        },
      ],
    });
  });
});

describe("sortRows", () => {
  it("orders rows exactly as compareRows does", async () => {
    const { sortRows } = await import("./collect.js");
    const names = [
      "web10",
      "web2",
      "WEB2",
      "db01",
      "db1",
      "a99999999999999999999",
      "a1",
      "",
      "x-1",
    ];
    const rows = names.map((n, i): HostStatus => ({
      host: `${n}#${i}`,
      displayName: n,
      local: false,
      current: null,
      booted: null,
      nextboot: null,
      unreadable: [],
      online: null,
      rebootRequired: null,
      updatedAt: null,
    }));
    expect(sortRows(rows).map((r) => r.host)).toEqual(
      [...rows].sort(compareRows).map((r) => r.host),
    );
    expect(
      sortRows(rows)
        .map((r) => r.displayName)
        .slice(0, 3),
    ).toEqual(["", "a1", "a99999999999999999999"]);
  });
});

describe("sortRows on generated names", () => {
  // A small deterministic generator (xorshift), so a failure can be replayed.
  function generator(seed: number): () => number {
    let x = seed;
    return () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 0x100000000;
    };
  }
  const PIECES = [
    "a",
    "B",
    "z",
    "Z",
    "-",
    ".",
    " ",
    "~",
    "_",
    "0",
    "00",
    "1",
    "7",
    "9",
    "10",
    "012",
  ];
  // Digit runs past 15 digits (leading zeros aside) compare as text in sortKey.
  const LONG_RUNS = ["1234567890123456", "9999999999999999", "00012345678901234567"];

  function names(count: number, seed: number, pieces: readonly string[]): string[] {
    const random = generator(seed);
    const out: string[] = [];
    for (let i = 0; i < count; i++) {
      let name = "";
      const parts = Math.floor(random() * 6);
      for (let j = 0; j < parts; j++) name += pieces[Math.floor(random() * pieces.length)] ?? "";
      out.push(name);
    }
    return out;
  }

  function rows(displayNames: readonly string[], domain: string): HostStatus[] {
    return displayNames.map((displayName, i) =>
      // Some hosts carry the domain (trimmed for display); some rows are equal.
      emptyRow(
        displayName,
        i % 3 === 0
          ? `${displayName}.${domain}`
          : i % 7 === 0
            ? displayName
            : `${displayName}#${i % 5}`,
      ),
    );
  }

  function expectSameOrder(input: HostStatus[]): void {
    // Identity, not equality: equal rows must keep their input order too.
    const sorted = sortRows(input);
    const reference = [...input].sort(compareRows);
    expect(sorted).toHaveLength(reference.length);
    sorted.forEach((row, i) => {
      expect(row).toBe(reference[i]);
    });
  }

  it("orders printable ASCII names (the fast path) exactly as compareRows does", () => {
    const edges = ["", "0", "00", "a0", "a00", "a", "A", "a000000000000000123456789012345"];
    for (const seed of [1, 2, 3, 4, 5]) {
      const generated = [...names(400, seed, PIECES), ...edges];
      expect(generated.filter((name) => fastSortKey(name) === undefined)).toEqual([]);
      expectSameOrder(rows(generated, "EXAMPLE.com"));
    }
  });

  it("orders names with digit runs too long for a number exactly as compareRows does", () => {
    expect(fastSortKey("a1234567890123456")).toBeUndefined();
    expectSameOrder(rows(names(400, 6, [...PIECES, ...LONG_RUNS]), "example.com"));
  });

  it("orders non-ASCII, control and bidi names (the slow path) exactly as compareRows does", () => {
    const odd = [
      "é1",
      "東京2",
      "x\u0000",
      "x\u0001y",
      "\u202ertl",
      "İ10",
      "ß",
      "x\u007f",
      "\uffff9",
    ];
    for (const seed of [7, 8]) {
      expectSameOrder(rows([...odd, ...names(300, seed, PIECES)], "example.com"));
    }
  });

  it("orders ASCII display names whose hosts carry a non-ASCII domain", () => {
    expectSameOrder(rows([...names(200, 9, PIECES), "web1", "web1"], "exämple.com\u0000"));
  });
});

describe("buildReport with publisher keys", () => {
  const A = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0";
  const states: LocalStates = {
    current: { state: "current", path: "/c", revision: A, problem: undefined },
    booted: { state: "booted", path: "/b", revision: A, problem: undefined },
    nextboot: { state: "nextboot", path: "/n", revision: A, problem: undefined },
  };
  const host = (fields: Partial<Record<FleetField, string>>): Map<FleetField, Uint8Array> =>
    new Map(Object.entries(fields).map(([k, v]) => [k as FleetField, Buffer.from(v)] as const));
  const snapshot: FleetSnapshot = {
    strayKeys: 0,
    hosts: new Map([
      // The local host's own entry: its publisher keys describe the local row.
      [
        "web01",
        host({
          current: A,
          alive: "x",
          reboot_required: "true",
          updated_at: "2025-06-01T12:00:00Z",
        }),
      ],
      [
        "live",
        host({
          current: A,
          alive: "x",
          reboot_required: "false",
          updated_at: "2025-06-01T12:00:00.5+02:00",
        }),
      ],
      ["gone", host({ current: A, reboot_required: "true", updated_at: "2025-06-01T11:00:00Z" })],
      ["legacy", host({ current: A })],
      ["broken", host({ alive: "x", reboot_required: "yes", updated_at: "yesterday" })],
    ]),
  };
  /** What `buildReport` gets besides the fleet: an etcd config, web01, its states. */
  const etcdInput: Omit<ReportInputs, "fleet"> = {
    config: {
      path: "/c.toml",
      domain: undefined,
      etcd: { endpoints: ["http://e:2379"], namespace: "/ns", timeoutSeconds: 1 },
      zookeeper: undefined,
      publish: { leaseTtlSeconds: 10, resyncIntervalSeconds: 300 },
      nebula: undefined,
    },
    detected: { hostname: "web01", source: "OGYGIA_HOSTNAME" },
    states,
  };
  const report = buildReport({
    ...etcdInput,
    fleet: { kind: "etcd", namespace: "/ns", table: tableFromSnapshot(snapshot), error: null },
  });
  const row = (name: string) => report.hosts.find((h) => h.host === name);

  it("marks live hosts online and hosts whose alive is gone offline", () => {
    expect(row("live")).toMatchObject({
      online: true,
      rebootRequired: false,
      updatedAt: "2025-06-01T12:00:00.5+02:00",
    });
    expect(row("gone")).toMatchObject({
      online: false,
      rebootRequired: true,
      updatedAt: "2025-06-01T11:00:00Z",
    });
  });

  it("marks a host without alive offline where publishers run, even with only state keys", () => {
    expect(row("legacy")).toMatchObject({ online: false, rebootRequired: null, updatedAt: null });
  });

  it("leaves liveness unknown in a namespace no publisher ever wrote to", () => {
    const legacyOnly = buildReport({
      ...etcdInput,
      fleet: {
        kind: "etcd",
        namespace: "/ns",
        table: tableFromSnapshot({
          strayKeys: 0,
          hosts: new Map([["legacy", host({ current: A })]]),
        }),
        error: null,
      },
    });
    expect(legacyOnly.hosts.map((h) => h.online)).toEqual([null, null]);
  });

  it("gives the local row its own entry's publisher keys and hides the entry", () => {
    expect(report.hosts[0]).toMatchObject({
      host: "web01",
      local: true,
      current: A,
      online: true,
      rebootRequired: true,
    });
    expect(report.hosts.filter((h) => h.host === "web01")).toHaveLength(1);
  });

  it("refuses malformed publisher values with a warning naming the key", () => {
    expect(row("broken")).toMatchObject({ online: true, rebootRequired: null, updatedAt: null });
    expect(report.warnings).toEqual([
      'etcd key /ns/broken/reboot_required: value is neither "true" nor "false"',
      "etcd key /ns/broken/updated_at: value is not an RFC 3339 time",
    ]);
  });
});
