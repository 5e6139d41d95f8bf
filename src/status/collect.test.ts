import { mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { describe, expect, it } from "vitest";

import { collectStatus, compareRows, isLocalHost, trimDomain, type HostStatus } from "./index.js";

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

describe("compareRows", () => {
  const row = (displayName: string): HostStatus => ({
    host: displayName,
    displayName,
    local: false,
    current: null,
    booted: null,
    nextboot: null,
    unreadable: [],
  });
  it("sorts names with numbers in numeric order", () => {
    const names = ["web10", "db01", "web2", "Web1"].map(row).sort(compareRows);
    expect(names.map((r) => r.displayName)).toEqual(["db01", "Web1", "web2", "web10"]);
  });
});

describe("collectStatus in local-only mode", () => {
  it("reads the three states under --root with no configuration", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), "ogygia-status-"));
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

describe("naturalCompare", () => {
  it("compares digit runs by value and text without case", async () => {
    const { naturalCompare } = await import("./index.js");
    const sorted = ["host10", "host9", "Host1", "host01a", "alpha", "host1b", "host100"].sort(
      naturalCompare,
    );
    expect(sorted).toEqual(["alpha", "Host1", "host01a", "host1b", "host9", "host10", "host100"]);
    expect(naturalCompare("a", "a")).toBe(0);
    expect(naturalCompare("a", "a1")).toBeLessThan(0);
  });
});

describe("sortRows", () => {
  it("orders rows exactly as compareRows does", async () => {
    const { sortRows } = await import("./index.js");
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
