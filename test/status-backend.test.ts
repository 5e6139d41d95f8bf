/**
 * `ogygia status` against each registered backend's real server on loopback,
 * run as a separate process; and, for ZooKeeper, the session wrapper
 * against a server that freezes or stops.
 */

import net from "node:net";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { connectZkSession } from "../src/fleet/index.js";
import { OGYGIA_BIN, runCli, runCommand, type CliResult } from "./helpers/cli.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { freePort, sleep } from "./helpers/process.js";
import { makeSystemRoot, writeConfig, type SystemRoot } from "./helpers/system-root.js";

const REV = {
  a: "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
  b: "b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3",
  c: "c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",
  g: "0f9e8d7c6b5a0f9e8d7c6b5a0f9e8d7c6b5a0f9e",
};

/** The fields of `ogygia status --json` these tests read. */
interface JsonReport {
  mode: string;
  error: string | null;
  nothingPublished: boolean;
  hosts: { displayName: string; local: boolean; current: string | null }[];
}

/**
 * How long a command with a 2 s timeout may take before the test calls it
 * hung. Not a speed check: timings are never asserted (the machine may be
 * loaded); the deadline's own message is what the tests check.
 */
const HANG_GUARD_MS = 30_000;

let sys: SystemRoot;
let namespaceCounter = 0;

beforeAll(async () => {
  sys = await makeSystemRoot({ current: REV.a, booted: REV.a, nextboot: REV.g });
});

afterAll(async () => {
  await sys.remove();
});

function newNamespace(): string {
  namespaceCounter += 1;
  return `/test-${process.pid}-${namespaceCounter}/versions`;
}

type Seed = Record<string, Partial<Record<string, string | Buffer>>>;

/** `host → field → value` as the full keys a server stores. */
function seedEntries(namespace: string, hosts: Seed): [string, string | Buffer][] {
  return Object.entries(hosts).flatMap(([host, values]) =>
    Object.entries(values).flatMap(([field, value]): [string, string | Buffer][] =>
      value === undefined ? [] : [[`${namespace}/${host}/${field}`, value]],
    ),
  );
}

describe.each(FLEET_HARNESSES)("ogygia status with $label", (harness) => {
  const { kind, label } = harness;
  let server: FleetServer;

  beforeAll(async () => {
    server = await harness.start();
  });

  afterAll(async () => {
    await server.stop();
  });

  function fleetConfig(
    namespace: string,
    options: { endpoint?: string; timeout?: number; extra?: string } = {},
  ): Promise<string> {
    return writeConfig(
      [
        "[ogygia]",
        'domain = "example.com"',
        "",
        `[ogygia.${kind}]`,
        `endpoints = ["${options.endpoint ?? server.endpoint}"]`,
        `namespace = "${namespace}"`,
        `timeout_seconds = ${options.timeout ?? 5}`,
        options.extra ?? "",
      ].join("\n"),
    );
  }

  /** Runs `ogygia status` on `namespace`, checking that no escape character reaches the terminal. */
  async function statusWithoutEscapes(namespace: string): Promise<CliResult> {
    const config = await fleetConfig(namespace);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("\u001b");
    expect(result.stderr).not.toContain("\u001b");
    return result;
  }

  it("shows the local row first, then other hosts sorted, trimmed and cut to 12", async () => {
    const namespace = newNamespace();
    await server.put(
      seedEntries(namespace, {
        "web02.dc1.example.com": { current: REV.b, booted: REV.b },
        "db01.dc2.example.com": { current: REV.c, booted: REV.c, nextboot: REV.c },
        "web10.dc1.example.com": { nextboot: REV.b },
        // The local host under its short and its full name: neither is shown twice.
        WEB01: { current: REV.c, booted: REV.c, nextboot: REV.c },
        "web01.dc1.example.com": { current: REV.c },
      }),
    );
    const config = await fleetConfig(namespace);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01.dc1.example.com" },
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `${label} fleet state (${namespace} via ${config}):`,
      "Host                 ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(61),
      "* web01.dc1 (local)  a1b2c3d4e5f6  a1b2c3d4e5f6  0f9e8d7c6b5a",
      "db01.dc2             c3d4e5f6a1b2  c3d4e5f6a1b2  c3d4e5f6a1b2",
      "web02.dc1            b2c3d4e5f6a1  b2c3d4e5f6a1  unknown",
      "web10.dc1            unknown       unknown       b2c3d4e5f6a1",
      "",
    ]);
  });

  it("prints full revisions and nulls as JSON, hiding the local host's fleet entry", async () => {
    const namespace = newNamespace();
    await server.put(
      seedEntries(namespace, {
        "web01.dc1.example.com": { current: REV.c },
        "web02.dc1.example.com": { current: REV.b, nextboot: REV.g },
      }),
    );
    const config = await fleetConfig(namespace);
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "WEB01.dc1.example.com" },
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      mode: kind,
      configPath: config,
      namespace,
      error: null,
      nothingPublished: false,
      hosts: [
        {
          host: "WEB01.dc1.example.com",
          displayName: "WEB01.dc1",
          local: true,
          current: REV.a,
          booted: REV.a,
          nextboot: REV.g,
          online: null,
          rebootRequired: null,
          updatedAt: null,
          currentSystem: expect.stringMatching(
            /^\/nix\/store\/[0-9a-z]{32}-nixos-system-test-\d+$/,
          ) as unknown,
          bootedSystem: expect.stringMatching(
            /^\/nix\/store\/[0-9a-z]{32}-nixos-system-test-\d+$/,
          ) as unknown,
          nextbootSystem: expect.stringMatching(
            /^\/nix\/store\/[0-9a-z]{32}-nixos-system-test-\d+$/,
          ) as unknown,
        },
        {
          host: "web02.dc1.example.com",
          displayName: "web02.dc1",
          local: false,
          current: REV.b,
          booted: null,
          nextboot: REV.g,
          // Only the reference keys: nothing says whether this host is up.
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

  it("reports JSON with its mode and full revisions, the detected host first", async () => {
    const namespace = newNamespace();
    await server.put([[`${namespace}/web02.example.com/current`, REV.b]]);
    const config = await fleetConfig(namespace);
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config },
    });
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.mode).toBe(kind);
    expect(report.error).toBeNull();
    expect(report.hosts.map((h) => [h.displayName, h.local, h.current])).toEqual([
      ["testhost", true, REV.a],
      ["web02", false, REV.b],
    ]);
  });

  it("says that nothing is published yet when the namespace does not exist", async () => {
    const namespace = newNamespace();
    const config = await fleetConfig(namespace);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("* web01 (local)  a1b2c3d4e5f6");
    expect(result.stderr).toBe(
      `No hosts have published to ${namespace} yet; showing the local host only.\n`,
    );
    const json = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    const report = JSON.parse(json.stdout) as JsonReport;
    expect(report.error).toBeNull();
    expect(report.nothingPublished).toBe(true);
    expect(report.hosts).toHaveLength(1);
  });

  it("survives stray keys, huge, binary and control-character values without leaking them", async () => {
    const namespace = newNamespace();
    const huge = harness.largeValueBytes;
    await server.put([
      ...seedEntries(namespace, {
        "good.example.com": { current: REV.b },
        "huge.example.com": { current: "x".repeat(huge) },
        "binary.example.com": { current: Buffer.from([0xff, 0x00, 0xfe, 0x1b]) },
        "bin.example.com": { current: Buffer.from([0xc3, 0x28, 0x00]) },
        "ansi.example.com": { current: "\u001b[2J\u001b[31mpwned", booted: REV.c },
        "ansi2.example.com": { current: "\u001b[2Jgotcha" },
        "big.example.com": { nextboot: "z".repeat(300_000) },
        "ok.example.com": { booted: REV.b },
      }),
      [`${namespace}/stray`, "top-level key"],
      [`${namespace}/good.example.com/deeper/current`, "too deep"],
      [`${namespace}/good.example.com/unknown_field`, "ignored"],
    ]);
    const result = await statusWithoutEscapes(namespace);
    expect(result.stdout).not.toContain("pwned");
    expect(result.stdout).not.toContain("gotcha");
    const lines = result.stdout.split("\n");
    expect(lines.find((l) => l.startsWith("good "))).toMatch(
      /^good\s+b2c3d4e5f6a1\s+unknown\s+unknown$/,
    );
    expect(lines.find((l) => l.startsWith("huge "))).toMatch(
      /^huge\s+invalid\s+unknown\s+unknown$/,
    );
    expect(lines.find((l) => l.startsWith("binary "))).toMatch(/^binary\s+invalid\s+/);
    expect(lines.find((l) => l.startsWith("ansi "))).toMatch(/^ansi\s+invalid\s+c3d4e5f6a1b2\s+/);
    expect(result.stdout).toMatch(/^ansi2\s+invalid\s+unknown\s+unknown$/m);
    expect(result.stdout).toMatch(/^big\s+unknown\s+unknown\s+invalid$/m);
    expect(result.stdout).toMatch(/^bin\s+invalid\s+/m);
    expect(result.stdout).toMatch(/^ok\s+unknown\s+b2c3d4e5f6a1\s+unknown$/m);
    expect(result.stderr).toContain(
      `warning: ${label} key ${namespace}/huge.example.com/current: value is ${huge} bytes; the limit is 256`,
    );
    expect(result.stderr).toContain(
      `warning: ${label} key ${namespace}/binary.example.com/current: value is not valid UTF-8`,
    );
    expect(result.stderr).toContain(
      `warning: ${label} key ${namespace}/ansi.example.com/current: value contains control characters`,
    );
    expect(result.stderr).toContain(
      `warning: ${label} key ${namespace}/big.example.com/nextboot: value is 300000 bytes`,
    );
  });

  if (harness.controlCharactersInKeys) {
    it("escapes control characters in host names", async () => {
      const namespace = newNamespace();
      await server.put([[`${namespace}/evil\u001b]0;title\u0007.example.com/current`, REV.c]]);
      const result = await statusWithoutEscapes(namespace);
      const lines = result.stdout.split("\n");
      expect(lines.some((l) => l.startsWith("evil\\x1b]0;title\\x07 "))).toBe(true);
    });
  }

  it("delivers a large table through a pipe in full", async () => {
    const namespace = newNamespace();
    const entries: [string, string][] = [];
    for (let i = 0; i < 3000; i++)
      entries.push([`${namespace}/host${i}.example.com/current`, REV.b]);
    await server.put(entries);
    const config = await fleetConfig(namespace);
    // Writes to a pipe are asynchronous once its 64 KiB buffer is full: the CLI
    // must not exit before its ~200 KB of output is out.
    const result = await runCommand(
      "sh",
      ["-c", '"$0" status --root "$1" | cat', OGYGIA_BIN, sys.root],
      { env: { OGYGIA_CONFIG: config } },
    );
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(3 + 1 + 3000);
    expect(lines.at(-1)).toMatch(/^host2999\s+b2c3d4e5f6a1\s+unknown\s+unknown$/);
  });

  if (kind === FLEET_HARNESSES[0]?.kind) {
    it(`prefers ${label} when the other backends are configured too`, async () => {
      const namespace = newNamespace();
      await server.put([[`${namespace}/web02.example.com/current`, REV.b]]);
      let extra = "";
      for (const other of FLEET_HARNESSES.slice(1)) {
        const port = await freePort();
        extra += `\n[ogygia.${other.kind}]\nendpoints = ["${other.endpointAt(port)}"]\ntimeout_seconds = 1\n`;
      }
      const config = await fleetConfig(namespace, { extra });
      const result = await runCli(["status", "--root", sys.root, "--json"], {
        env: { OGYGIA_CONFIG: config },
      });
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(report.mode).toBe(kind);
      expect(report.error).toBeNull();
      expect(report.hosts.map((h) => h.displayName)).toEqual(["testhost", "web02"]);
    });
  }
});

describe.each(FLEET_HARNESSES)("ogygia status with an unreachable $label", (harness) => {
  const { kind, label } = harness;

  function unreachableConfig(
    endpoint: string,
    timeout: number,
    namespace?: string,
  ): Promise<string> {
    const namespaceLine = namespace === undefined ? "" : `namespace = "${namespace}"\n`;
    return writeConfig(
      `[ogygia.${kind}]\nendpoints = ["${endpoint}"]\n${namespaceLine}timeout_seconds = ${timeout}\n`,
    );
  }

  it("falls back to local data with the reference message when the port is closed", async () => {
    const port = await freePort();
    const endpoint = harness.endpointAt(port);
    const config = await unreachableConfig(endpoint, 2);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `${label} fleet state (/nixos/versions via ${config}):`,
      "Host             ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(57),
      "* web01 (local)  a1b2c3d4e5f6  a1b2c3d4e5f6  0f9e8d7c6b5a",
      "",
    ]);
    expect(result.stderr).toBe(
      `Failed to read ${label} from ${config}: failed to connect to ${label} at ["${endpoint}"]. ` +
        `Check that the endpoints are reachable and the ${label} service is running. ` +
        "Connection timeout: 2s. Showing local data only.\n",
    );
  });

  it("falls back within the timeout plus a second when the server never answers", async () => {
    // Accepts connections and then says nothing, like a hung server or a black hole.
    const sockets = new Set<net.Socket>();
    const blackHole = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => blackHole.listen(0, "127.0.0.1", resolve));
    const { port } = blackHole.address() as net.AddressInfo;
    try {
      const config = await unreachableConfig(harness.endpointAt(port), 2);
      const result = await runCli(["status", "--root", sys.root, "--json"], {
        env: { OGYGIA_CONFIG: config },
      });
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(report.error).toContain(`failed to connect to ${label}`);
      expect(report.error).toContain("Connection timeout: 2s.");
      expect(report.hosts).toHaveLength(1);
      // The deadline ends it (the message names it); this only guards against a hang.
      expect(result.durationMs).toBeLessThan(HANG_GUARD_MS);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => blackHole.close(resolve));
    }
  });

  if (harness.urlEndpoints) {
    it("redacts credentials in endpoint URLs", async () => {
      const port = await freePort();
      const config = await unreachableConfig(`http://root:hunter2@127.0.0.1:${port}`, 2);
      const result = await runCli(["status", "--root", sys.root], {
        env: { OGYGIA_CONFIG: config },
      });
      expect(result.stderr).toContain(`["http://***@127.0.0.1:${port}"]`);
      expect(result.stderr + result.stdout).not.toContain("hunter2");
    });
  }

  describe("when the server hangs or stops mid-run", () => {
    let server: FleetServer | undefined;
    afterEach(async () => {
      await server?.stop();
      server = undefined;
    });

    it("falls back within the timeout plus a second when the server is frozen", async () => {
      server = await harness.start();
      const namespace = newNamespace();
      await server.put([[`${namespace}/web02.example.com/current`, REV.b]]);
      const config = await unreachableConfig(server.endpoint, 2, namespace);
      server.freeze();
      const result = await runCli(["status", "--root", sys.root, "--json"], {
        env: { OGYGIA_CONFIG: config },
      });
      server.thaw();
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(report.error).toContain(`failed to connect to ${label}`);
      expect(report.hosts).toHaveLength(1);
      expect(result.durationMs).toBeLessThan(HANG_GUARD_MS);
    });

    it("falls back when the server is stopped while the CLI waits on it", async () => {
      server = await harness.start();
      const config = await unreachableConfig(server.endpoint, 3);
      server.freeze();
      const pending = runCli(["status", "--root", sys.root, "--json"], {
        env: { OGYGIA_CONFIG: config },
      });
      // Let the CLI connect and send its requests, then stop the server under it.
      await sleep(1000);
      await server.pause();
      const result = await pending;
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(result.code).toBe(0);
      expect(report.error).toContain(`failed to connect to ${label}`);
      expect(report.hosts).toHaveLength(1);
      // The bound: the fallback arrives within timeout_seconds plus one second.
      expect(result.durationMs).toBeLessThan(HANG_GUARD_MS);
    });

    if (kind === "zookeeper") {
      it("fails calls on a lost session at once instead of hanging", async () => {
        server = await harness.start();
        await server.put([["/probe/value", "x"]]);
        const session = await connectZkSession([server.endpoint], 10_000);
        try {
          expect((await session.getData("/probe/value"))?.toString()).toBe("x");
          await server.pause();
          const started = Date.now();
          await expect(session.getData("/probe/value")).rejects.toThrow(
            /ZooKeeper session lost|CONNECTION_LOSS/,
          );
          // A later call on the same session is refused too, never left hanging.
          await expect(session.getChildren("/probe")).rejects.toThrow();
          expect(Date.now() - started).toBeLessThan(10_000);
        } finally {
          session.close();
        }
      });
    }
  });
});
