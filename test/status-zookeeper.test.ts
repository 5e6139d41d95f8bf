/**
 * `ogygia status` against a real ZooKeeper on loopback, run as a separate
 * process; and the session wrapper against a server that freezes or stops.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { ZkSession } from "../src/fleet/zookeeper.js";
import { runCli } from "./helpers/cli.js";
import { freePort, sleep } from "./helpers/process.js";
import { makeSystemRoot, writeConfig, type SystemRoot } from "./helpers/system-root.js";
import { startZooKeeper, type ZooKeeperServer } from "./helpers/zookeeper.js";

const REV = {
  a: "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0",
  b: "b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3",
  c: "c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4",
  g: "0f9e8d7c6b5a0f9e8d7c6b5a0f9e8d7c6b5a0f9e",
};

interface JsonReport {
  mode: string;
  error: string | null;
  nothingPublished: boolean;
  hosts: { host: string; displayName: string; local: boolean; current: string | null }[];
}

let zk: ZooKeeperServer;
let sys: SystemRoot;
let namespaceCounter = 0;

beforeAll(async () => {
  zk = await startZooKeeper();
  sys = await makeSystemRoot({ current: REV.a, booted: REV.a, nextboot: REV.g });
});

afterAll(async () => {
  await zk.stop();
  await sys.remove();
});

function newNamespace(): string {
  namespaceCounter += 1;
  return `/test-${process.pid}-${namespaceCounter}/versions`;
}

function zkConfig(namespace: string, endpoint: string, timeout = 5): Promise<string> {
  return writeConfig(
    [
      "[ogygia]",
      'domain = "example.com"',
      "",
      "[ogygia.zookeeper]",
      `endpoints = ["${endpoint}"]`,
      `namespace = "${namespace}"`,
      `timeout_seconds = ${timeout}`,
    ].join("\n"),
  );
}

describe("ogygia status with ZooKeeper", () => {
  it("shows the local row first, then other hosts sorted and trimmed", async () => {
    const namespace = newNamespace();
    await zk.putMany([
      [`${namespace}/web02.dc1.example.com/current`, REV.b],
      [`${namespace}/web02.dc1.example.com/booted`, REV.b],
      [`${namespace}/db01.dc2.example.com/current`, REV.c],
      [`${namespace}/db01.dc2.example.com/booted`, REV.c],
      [`${namespace}/db01.dc2.example.com/nextboot`, REV.c],
      [`${namespace}/web01.dc1.example.com/current`, REV.c],
    ]);
    const config = await zkConfig(namespace, zk.endpoint);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01.dc1.example.com" },
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `ZooKeeper fleet state (${namespace} via ${config}):`,
      "Host                 ⚡ current    🥾 booted     🔜 next boot",
      "-".repeat(61),
      "* web01.dc1 (local)  a1b2c3d4e5f6  a1b2c3d4e5f6  0f9e8d7c6b5a",
      "db01.dc2             c3d4e5f6a1b2  c3d4e5f6a1b2  c3d4e5f6a1b2",
      "web02.dc1            b2c3d4e5f6a1  b2c3d4e5f6a1  unknown",
      "",
    ]);
  });

  it("reports JSON with mode zookeeper and full revisions", async () => {
    const namespace = newNamespace();
    await zk.putMany([[`${namespace}/web02.example.com/current`, REV.b]]);
    const config = await zkConfig(namespace, zk.endpoint);
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config },
    });
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.mode).toBe("zookeeper");
    expect(report.error).toBeNull();
    expect(report.hosts.map((h) => [h.displayName, h.local, h.current])).toEqual([
      ["testhost", true, REV.a],
      ["web02", false, REV.b],
    ]);
  });

  it("says that nothing is published yet when the namespace does not exist", async () => {
    const config = await zkConfig(newNamespace(), zk.endpoint);
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config },
    });
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.error).toBeNull();
    expect(report.nothingPublished).toBe(true);
    expect(report.hosts).toHaveLength(1);
  });

  it("refuses binary and control-character values without printing them", async () => {
    const namespace = newNamespace();
    await zk.putMany([
      [`${namespace}/bin.example.com/current`, Buffer.from([0xc3, 0x28, 0x00])],
      [`${namespace}/ansi.example.com/current`, "\u001b[2Jgotcha"],
      [`${namespace}/big.example.com/nextboot`, "z".repeat(300_000)],
      [`${namespace}/ok.example.com/booted`, REV.b],
    ]);
    const config = await zkConfig(namespace, zk.endpoint);
    const result = await runCli(["status", "--root", sys.root], { env: { OGYGIA_CONFIG: config } });
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).not.toContain("\u001b");
    expect(result.stdout).toMatch(/^ansi\s+invalid\s+unknown\s+unknown$/m);
    expect(result.stdout).toMatch(/^big\s+unknown\s+unknown\s+invalid$/m);
    expect(result.stdout).toMatch(/^bin\s+invalid\s+/m);
    expect(result.stdout).toMatch(/^ok\s+unknown\s+b2c3d4e5f6a1\s+unknown$/m);
    expect(result.stderr).toContain(
      `warning: ZooKeeper key ${namespace}/big.example.com/nextboot: value is 300000 bytes`,
    );
  });
});

describe("ogygia status with an unreachable ZooKeeper", () => {
  it("falls back with the reference message when the port is closed", async () => {
    const port = await freePort();
    const config = await zkConfig("/nixos/versions", `127.0.0.1:${port}`, 2);
    const result = await runCli(["status", "--root", sys.root], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "web01" },
    });
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")[0]).toBe(
      `ZooKeeper fleet state (/nixos/versions via ${config}):`,
    );
    expect(result.stdout).toContain("* web01 (local)  a1b2c3d4e5f6  a1b2c3d4e5f6  0f9e8d7c6b5a");
    expect(result.stderr).toBe(
      `Failed to read ZooKeeper from ${config}: failed to connect to ZooKeeper at ["127.0.0.1:${port}"]. ` +
        "Check that the endpoints are reachable and the ZooKeeper service is running. " +
        "Connection timeout: 2s. Showing local data only.\n",
    );
  });
});

describe("ogygia status when the ZooKeeper server hangs or stops mid-run", () => {
  let server: ZooKeeperServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it("falls back within the timeout plus a second when the server is frozen", async () => {
    server = await startZooKeeper();
    const namespace = newNamespace();
    await server.putMany([[`${namespace}/web02.example.com/current`, REV.b]]);
    const config = await zkConfig(namespace, server.endpoint, 2);
    server.freeze();
    const result = await runCli(["status", "--root", sys.root, "--json"], {
      env: { OGYGIA_CONFIG: config },
    });
    server.thaw();
    const report = JSON.parse(result.stdout) as JsonReport;
    expect(report.error).toContain("failed to connect to ZooKeeper");
    expect(report.hosts).toHaveLength(1);
    expect(result.durationMs).toBeLessThan(3000);
  });

  it("falls back when the server is stopped while the CLI waits on it", async () => {
    server = await startZooKeeper();
    const config = await zkConfig(newNamespace(), server.endpoint, 3);
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
    expect(report.error).toContain("failed to connect to ZooKeeper");
    expect(report.hosts).toHaveLength(1);
    // The bound: the fallback arrives within timeout_seconds plus one second.
    expect(result.durationMs).toBeLessThan(4000);
  });

  it("fails calls on a lost session at once instead of hanging", async () => {
    server = await startZooKeeper();
    await server.putMany([["/probe/value", "x"]]);
    const session = await ZkSession.connect([server.endpoint], 10_000);
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
});
