/**
 * `ogygia status` against a real etcd on loopback, run as a separate process.
 */

import net from "node:net";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { OGYGIA_BIN, runCli, runCommand } from "./helpers/cli.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";
import { freePort } from "./helpers/process.js";
import { makeSystemRoot, writeConfig, type SystemRoot } from "./helpers/system-root.js";

const REV = {
  a: "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
  b: "b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3",
  c: "c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",
  g: "0f9e8d7c6b5a0f9e8d7c6b5a0f9e8d7c6b5a0f9e",
};

interface JsonReport {
  mode: string;
  configPath: string | null;
  namespace: string | null;
  error: string | null;
  nothingPublished: boolean;
  hosts: {
    host: string;
    displayName: string;
    local: boolean;
    current: string | null;
    booted: string | null;
    nextboot: string | null;
  }[];
  warnings: string[];
}

let etcd: EtcdServer;
let sys: SystemRoot;
let namespaceCounter = 0;

beforeAll(async () => {
  etcd = await startEtcd();
  sys = await makeSystemRoot({ current: REV.a, booted: REV.a, nextboot: REV.g });
});

afterAll(async () => {
  await etcd.stop();
  await sys.remove();
});

function newNamespace(): string {
  namespaceCounter += 1;
  return `/test-${process.pid}-${namespaceCounter}/versions`;
}

async function seed(
  namespace: string,
  hosts: Record<string, Partial<Record<"current" | "booted" | "nextboot", string | Buffer>>>,
): Promise<void> {
  for (const [host, values] of Object.entries(hosts)) {
    for (const [field, value] of Object.entries(values)) {
      await etcd.client.put(`${namespace}/${host}/${field}`).value(value);
    }
  }
}

async function etcdConfig(namespace: string, extra = ""): Promise<string> {
  return writeConfig(
    [
      "[ogygia]",
      'domain = "example.com"',
      "",
      "[ogygia.etcd]",
      `endpoints = ["${etcd.endpoint}"]`,
      `namespace = "${namespace}"`,
      "timeout_seconds = 5",
      extra,
    ].join("\n"),
  );
}

describe("ogygia status with etcd", () => {
  it("shows the local row first, then other hosts sorted, trimmed and cut to 12", async () => {
    const namespace = newNamespace();
    await seed(namespace, {
      "web02.dc1.example.com": { current: REV.b, booted: REV.b },
      "db01.dc2.example.com": { current: REV.c, booted: REV.c, nextboot: REV.c },
      "web10.dc1.example.com": { nextboot: REV.b },
      // The local host under its short name: must not be shown twice.
      WEB01: { current: REV.c, booted: REV.c, nextboot: REV.c },
    });
    const config = await etcdConfig(namespace);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01.dc1.example.com" },
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `etcd fleet state (${namespace} via ${config}):`,
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
    await seed(namespace, {
      "web01.dc1.example.com": { current: REV.c },
      "web02.dc1.example.com": { current: REV.b, nextboot: REV.g },
    });
    const config = await etcdConfig(namespace);
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "WEB01.dc1.example.com" },
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      mode: "etcd",
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
        },
      ],
      warnings: [],
    });
  });

  it("says that nothing is published yet for an empty namespace", async () => {
    const namespace = newNamespace();
    const config = await etcdConfig(namespace);
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
    expect(report.nothingPublished).toBe(true);
    expect(report.hosts).toHaveLength(1);
  });

  it("survives stray keys, huge, binary and control-character values without leaking them", async () => {
    const namespace = newNamespace();
    await seed(namespace, {
      "good.example.com": { current: REV.b },
      "huge.example.com": { current: "x".repeat(1024 * 1024) },
      "binary.example.com": { current: Buffer.from([0xff, 0x00, 0xfe, 0x1b]) },
      "ansi.example.com": { current: "\u001b[2J\u001b[31mpwned", booted: REV.c },
      "evil\u001b]0;title\u0007.example.com": { current: REV.c },
    });
    await etcd.client.put(`${namespace}/stray`).value("top-level key");
    await etcd.client.put(`${namespace}/good.example.com/deeper/current`).value("too deep");
    await etcd.client.put(`${namespace}/good.example.com/unknown_field`).value("ignored");
    const config = await etcdConfig(namespace);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("\u001b");
    expect(result.stderr).not.toContain("\u001b");
    expect(result.stdout).not.toContain("pwned");
    const lines = result.stdout.split("\n");
    expect(lines.find((l) => l.startsWith("good "))).toMatch(
      /^good\s+b2c3d4e5f6a1\s+unknown\s+unknown$/,
    );
    expect(lines.find((l) => l.startsWith("huge "))).toMatch(
      /^huge\s+invalid\s+unknown\s+unknown$/,
    );
    expect(lines.find((l) => l.startsWith("binary "))).toMatch(/^binary\s+invalid\s+/);
    expect(lines.find((l) => l.startsWith("ansi "))).toMatch(/^ansi\s+invalid\s+c3d4e5f6a1b2\s+/);
    expect(lines.some((l) => l.startsWith("evil\\x1b]0;title\\x07 "))).toBe(true);
    expect(result.stderr).toContain(
      `warning: etcd key ${namespace}/huge.example.com/current: value is 1048576 bytes; the limit is 256`,
    );
    expect(result.stderr).toContain(
      `warning: etcd key ${namespace}/binary.example.com/current: value is not valid UTF-8`,
    );
    expect(result.stderr).toContain(
      `warning: etcd key ${namespace}/ansi.example.com/current: value contains control characters`,
    );
  });

  it("delivers a large table through a pipe in full", async () => {
    const namespace = newNamespace();
    const puts: Promise<unknown>[] = [];
    for (let i = 0; i < 3000; i++) {
      puts.push(etcd.client.put(`${namespace}/host${i}.example.com/current`).value(REV.b).exec());
    }
    await Promise.all(puts);
    const config = await etcdConfig(namespace);
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

  it("prefers etcd when ZooKeeper is configured too", async () => {
    const namespace = newNamespace();
    await seed(namespace, { "web02.example.com": { current: REV.b } });
    const zkPort = await freePort();
    const config = await etcdConfig(
      namespace,
      `\n[ogygia.zookeeper]\nendpoints = ["127.0.0.1:${zkPort}"]\ntimeout_seconds = 1\n`,
    );
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config },
    });
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.mode).toBe("etcd");
    expect(report.error).toBeNull();
    expect(report.hosts.map((h) => h.displayName)).toEqual(["testhost", "web02"]);
  });
});

describe("ogygia status with an unreachable etcd", () => {
  it("falls back to local data with the reference message when the port is closed", async () => {
    const port = await freePort();
    const config = await writeConfig(
      `[ogygia.etcd]\nendpoints = ["http://127.0.0.1:${port}"]\ntimeout_seconds = 3\n`,
    );
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `etcd fleet state (/nixos/versions via ${config}):`,
      "Host             ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(57),
      "* web01 (local)  a1b2c3d4e5f6  a1b2c3d4e5f6  0f9e8d7c6b5a",
      "",
    ]);
    expect(result.stderr).toBe(
      `Failed to read etcd from ${config}: failed to connect to etcd at ["http://127.0.0.1:${port}"]. ` +
        "Check that the endpoints are reachable and the etcd service is running. " +
        "Connection timeout: 3s. Showing local data only.\n",
    );
  });

  it("falls back within the timeout plus a second when the server never answers", async () => {
    // Accepts connections and then says nothing, like a hung server or a black hole.
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      const config = await writeConfig(
        `[ogygia.etcd]\nendpoints = ["http://127.0.0.1:${port}"]\ntimeout_seconds = 2\n`,
      );
      const result = await runCli(["status", "--root", sys.root, "--json"], {
        env: { OGYGIA_CONFIG: config },
      });
      const report = JSON.parse(result.stdout) as JsonReport;
      expect(report.error).toContain("failed to connect to etcd");
      expect(report.error).toContain("Connection timeout: 2s.");
      expect(report.hosts).toHaveLength(1);
      // The bound: the fallback arrives within timeout_seconds plus one second.
      expect(result.durationMs).toBeLessThan(3000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("redacts credentials in endpoint URLs", async () => {
    const port = await freePort();
    const config = await writeConfig(
      `[ogygia.etcd]\nendpoints = ["http://root:hunter2@127.0.0.1:${port}"]\ntimeout_seconds = 2\n`,
    );
    const result = await runCli(["status", "--root", sys.root], { env: { OGYGIA_CONFIG: config } });
    expect(result.stderr).toContain(`["http://***@127.0.0.1:${port}"]`);
    expect(result.stderr + result.stdout).not.toContain("hunter2");
  });
});
