import { describe, expect, it } from "vitest";

import type { HostStatus, StatusReport } from "./collect.js";
import { renderStatusText, statusJson } from "./index.js";

function report(overrides: Partial<StatusReport>): StatusReport {
  return {
    mode: "local",
    configPath: null,
    namespace: null,
    error: null,
    nothingPublished: false,
    hosts: [],
    warnings: [],
    hostnameSource: "OGYGIA_HOSTNAME",
    ...overrides,
  };
}

const local = {
  host: "web01.dc1.example.com",
  displayName: "web01.dc1",
  local: true,
  current: "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
  booted: "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2",
  nextboot: "g7h8i9j0k1l2g7h8i9j0k1l2",
  unreadable: [],
  online: null,
  rebootRequired: null,
  updatedAt: null,
} as const;

async function stdoutOf(r: StatusReport): Promise<string[]> {
  return (await renderStatusText(r)).filter((l) => l.stream === "stdout").map((l) => l.text);
}

/** Standard output for an etcd fleet report of `hosts` (namespace /n, config /c). */
function fleetLines(hosts: StatusReport["hosts"]): Promise<string[]> {
  return stdoutOf(report({ mode: "etcd", configPath: "/c", namespace: "/n", hosts }));
}

async function stderrOf(r: StatusReport): Promise<string[]> {
  return (await renderStatusText(r)).filter((l) => l.stream === "stderr").map((l) => l.text);
}

describe("renderStatusText", () => {
  it("prints the local-only banner and an unmarked row", async () => {
    expect(await stdoutOf(report({ hosts: [{ ...local, unreadable: [] }] }))).toEqual([
      "Ogygia config not found; showing local data only.",
      "Host       ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(51),
      "web01.dc1  a1b2c3d4e5f6  a1b2c3d4e5f6  g7h8i9j0k1l2",
    ]);
  });

  it("prints the etcd banner, the marked local row first, and unknowns", async () => {
    const lines = await stdoutOf(
      report({
        mode: "etcd",
        configPath: "/run/current-system/sw/share/ogygia/config.toml",
        namespace: "/nixos/versions",
        hosts: [
          { ...local, unreadable: [] },
          {
            host: "web02.dc1",
            displayName: "web02.dc1",
            local: false,
            current: "b2c3d4e5f6a1",
            booted: "b2c3d4e5f6a1",
            nextboot: null,
            unreadable: [],
            online: null,
            rebootRequired: null,
            updatedAt: null,
          },
        ],
      }),
    );
    expect(lines).toEqual([
      "etcd fleet state (/nixos/versions via /run/current-system/sw/share/ogygia/config.toml):",
      "Host                 ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(61),
      "* web01.dc1 (local)  a1b2c3d4e5f6  a1b2c3d4e5f6  g7h8i9j0k1l2",
      "web02.dc1            b2c3d4e5f6a1  b2c3d4e5f6a1  unknown",
    ]);
  });

  it("prints the reference's failure message and falls back to the local row", async () => {
    const r = report({
      mode: "zookeeper",
      configPath: "/etc/ogygia.toml",
      namespace: "/nixos/versions",
      error: 'failed to connect to ZooKeeper at ["zk1:2181"]. Connection timeout: 10s.',
      hosts: [{ ...local, unreadable: [] }],
    });
    expect((await stdoutOf(r))[0]).toBe(
      "ZooKeeper fleet state (/nixos/versions via /etc/ogygia.toml):",
    );
    expect(await stderrOf(r)).toEqual([
      'Failed to read ZooKeeper from /etc/ogygia.toml: failed to connect to ZooKeeper at ["zk1:2181"]. Connection timeout: 10s. Showing local data only.',
    ]);
  });

  it("escapes hostile host names and marks refused values", async () => {
    const lines = await fleetLines([
      {
        host: "evil\u001b[2J",
        displayName: "evil\u001b[2J",
        local: false,
        current: null,
        booted: null,
        nextboot: null,
        unreadable: ["current"],
        online: null,
        rebootRequired: null,
        updatedAt: null,
      },
    ]);
    expect(lines[3]).toBe("evil\\x1b[2J  invalid     unknown    unknown");
    expect(lines.join("\n")).not.toContain("\u001b");
  });

  it("says when nothing is published yet", async () => {
    const errs = await stderrOf(
      report({
        mode: "etcd",
        configPath: "/c",
        namespace: "/nixos/versions",
        nothingPublished: true,
        hosts: [{ ...local, unreadable: [] }],
      }),
    );
    expect(errs).toEqual([
      "No hosts have published to /nixos/versions yet; showing the local host only.",
    ]);
  });
});

describe("status markers", () => {
  const fleetHost = (name: string, extra: Partial<HostStatus>): HostStatus => ({
    host: name,
    displayName: name,
    local: false,
    current: "b2c3d4e5f6a1",
    booted: "b2c3d4e5f6a1",
    nextboot: "b2c3d4e5f6a1",
    unreadable: [],
    online: null,
    rebootRequired: null,
    updatedAt: null,
    ...extra,
  });

  it("puts offline and reboot-required markers beside the name, in the same columns", async () => {
    const lines = await fleetLines([
      { ...local, unreadable: [], online: true, rebootRequired: true },
      fleetHost("db01", { online: true, rebootRequired: false }),
      fleetHost("web02", { online: false }),
      fleetHost("web03", { online: false, rebootRequired: true }),
      fleetHost("web04", {}),
    ]);
    expect(lines).toEqual(
      [
        "banner",
        "Host                                  ⚡ current    🥾 booted     🔜 next boot",
        "-".repeat(78),
        "* web01.dc1 (local, reboot required)  a1b2c3d4e5f6  a1b2c3d4e5f6  g7h8i9j0k1l2",
        "db01                                  b2c3d4e5f6a1  b2c3d4e5f6a1  b2c3d4e5f6a1",
        "web02 (offline)                       b2c3d4e5f6a1  b2c3d4e5f6a1  b2c3d4e5f6a1",
        "web03 (offline, reboot required)      b2c3d4e5f6a1  b2c3d4e5f6a1  b2c3d4e5f6a1",
        "web04                                 b2c3d4e5f6a1  b2c3d4e5f6a1  b2c3d4e5f6a1",
      ].map((line, i) => (i === 0 ? "etcd fleet state (/n via /c):" : line)),
    );
  });

  it("puts the publisher's fields in JSON", () => {
    const json = statusJson(
      report({
        mode: "etcd",
        hosts: [
          fleetHost("web02", {
            online: false,
            rebootRequired: true,
            updatedAt: "2025-06-01T12:00:00.000Z",
          }),
        ],
      }),
    ) as { hosts: Record<string, unknown>[] };
    expect(json.hosts[0]).toMatchObject({
      host: "web02",
      online: false,
      rebootRequired: true,
      updatedAt: "2025-06-01T12:00:00.000Z",
    });
  });
});

describe("renderStatusText column widths", () => {
  const base: HostStatus = {
    host: "",
    displayName: "",
    local: false,
    current: "a1b2c3d4e5f6a7b8",
    booted: null,
    nextboot: "b2c3d4e5f6a1",
    unreadable: [],
    online: null,
    rebootRequired: null,
    updatedAt: null,
  };

  it("pads wide, escaped and marked names by display width, as ASCII ones", async () => {
    const { prepareDisplayWidth } = await import("../core/index.js");
    await prepareDisplayWidth(["東京"]);
    const lines = await fleetLines([
      {
        ...base,
        host: "web01",
        displayName: "web01",
        local: true,
        current: null,
        unreadable: ["current"],
        online: true,
        rebootRequired: true,
      },
      { ...base, host: "東京.example.com", displayName: "東京", online: false },
      {
        ...base,
        host: "evil\u001b[2J",
        displayName: "evil\u001b[2J",
        rebootRequired: true,
        unreadable: ["booted"],
      },
      {
        ...base,
        host: "é",
        displayName: "é",
        current: "éééééééééééééé",
        booted: "😀😀😀😀😀😀😀😀😀😀😀😀😀",
      },
      {
        ...base,
        host: "w",
        displayName: "w",
        current: "",
        booted: "abc",
        nextboot: "0123456789abc",
      },
    ]);
    expect(lines).toEqual([
      "etcd fleet state (/n via /c):",
      "Host                              ⚡ current    🥾 booted                 🔜 next boot",
      "-".repeat(86),
      "* web01 (local, reboot required)  unreadable    unknown                   b2c3d4e5f6a1",
      "東京 (offline)                    a1b2c3d4e5f6  unknown                   b2c3d4e5f6a1",
      "evil\\x1b[2J (reboot required)     a1b2c3d4e5f6  invalid                   b2c3d4e5f6a1",
      "é                                 éééééééééééé  😀😀😀😀😀😀😀😀😀😀😀😀  b2c3d4e5f6a1",
      "w                                               abc                       0123456789ab",
    ]);
  });
});

describe("renderStatusText with very long host names", () => {
  it("cuts names over 64 characters in the table, says so once, and keeps them whole in JSON", async () => {
    const long = "h".repeat(100_000);
    const wide = "東".repeat(70);
    const row = (name: string): HostStatus => ({
      host: name,
      displayName: name,
      local: false,
      current: "a1b2c3d4e5f6a7b8",
      booted: null,
      nextboot: null,
      unreadable: [],
      online: true,
      rebootRequired: null,
      updatedAt: null,
    });
    const r = report({
      mode: "etcd",
      namespace: "/n",
      configPath: "/c",
      hosts: [row(long), row(wide), row("web01")],
    });
    const lines = await stdoutOf(r);
    expect(lines[3]).toMatch(new RegExp(`^${"h".repeat(63)}… +a1b2c3d4e5f6  unknown    unknown$`));
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThan(200);
    expect(lines[4]?.startsWith(`${"東".repeat(63)}…`)).toBe(true);
    expect(await stderrOf(r)).toEqual([
      "warning: 2 host names are longer than 64 characters, cut in the table (--json has them whole)",
    ]);
    const json = statusJson(r) as { hosts: { host: string }[] };
    expect(json.hosts[0]?.host).toBe(long);
  });
});

describe("statusJson", () => {
  it("keeps full revisions and nulls", () => {
    const json = statusJson(report({ hosts: [{ ...local, nextboot: null, unreadable: [] }] }));
    expect(json).toEqual({
      mode: "local",
      configPath: null,
      namespace: null,
      error: null,
      nothingPublished: false,
      hosts: [
        {
          host: "web01.dc1.example.com",
          displayName: "web01.dc1",
          local: true,
          current: local.current,
          booted: local.booted,
          nextboot: null,
          online: null,
          rebootRequired: null,
          updatedAt: null,
          currentSystem: null,
          bootedSystem: null,
          nextbootSystem: null,
        },
      ],
      warnings: [],
    });
  });
});
