/**
 * Fifty `ogygia publish` processes against one real etcd, each with its own
 * fake root, read back by one `ogygia status`.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  makeBootRoot,
  publishConfig,
  startPublisher,
  type BootRoot,
  type StatusJsonHost,
} from "./helpers/publish.js";
import { runCli } from "./helpers/cli.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";
import { waitFor, type ManagedProcess } from "./helpers/process.js";

const HOSTS = 50;
const NAMESPACE = "/fleet-of-fifty/versions";

/** A distinct 40-character revision for each host and state. */
function revision(host: number, state: number): string {
  return `${host.toString(16).padStart(2, "0")}${state}`.repeat(14).slice(0, 40);
}

const name = (i: number): string => `host${String(i).padStart(2, "0")}.example.com`;
/** Every seventh host has a new kernel waiting for its next boot. */
const needsReboot = (i: number): boolean => i % 7 === 0;

let etcd: EtcdServer;
let config: string;
const roots: BootRoot[] = [];
const publishers: ManagedProcess[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  config = await publishConfig({
    backend: "etcd",
    endpoint: etcd.endpoint,
    namespace: NAMESPACE,
    leaseTtlSeconds: 10,
    timeoutSeconds: 10,
  });
  for (let i = 1; i <= HOSTS; i++) {
    roots.push(
      await makeBootRoot({
        current: { revision: revision(i, 1), kernel: "linux-6.6.1" },
        booted: { revision: revision(i, 2), kernel: "linux-6.6.1" },
        nextboot: {
          revision: revision(i, 3),
          kernel: needsReboot(i) ? "linux-6.6.2" : "linux-6.6.1",
        },
      }),
    );
  }
});

afterAll(async () => {
  await Promise.all(publishers.splice(0).map((p) => p.stop("SIGKILL")));
  await Promise.all(roots.map((r) => r.remove()));
  await etcd.stop();
});

async function fleetStatus(): Promise<StatusJsonHost[]> {
  const result = await runCli(["status", "--json"], {
    env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" },
  });
  expect(result.code).toBe(0);
  return (JSON.parse(result.stdout) as { hosts: StatusJsonHost[] }).hosts.filter(
    (h) => !h.host.startsWith("observer"),
  );
}

describe("fifty publishers against one etcd", () => {
  it("ogygia status shows all fifty, each with its own states, online", async () => {
    roots.forEach((root, index) => {
      publishers.push(
        startPublisher({ config, root: root.root, host: name(index + 1), logLevel: "warn" }),
      );
    });
    const hosts = await waitFor(
      "all fifty hosts online",
      async () => {
        const exited = publishers.find((p) => p.child.exitCode !== null);
        if (exited) throw new Error(`a publisher exited:\n${exited.output()}`);
        const list = await fleetStatus();
        return list.length === HOSTS && list.every((h) => h.online === true) ? list : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    expect(hosts.map((h) => h.host)).toEqual(Array.from({ length: HOSTS }, (_, i) => name(i + 1)));
    hosts.forEach((h, index) => {
      const i = index + 1;
      expect(h).toMatchObject({
        current: revision(i, 1),
        booted: revision(i, 2),
        nextboot: revision(i, 3),
        online: true,
        rebootRequired: needsReboot(i),
      });
      expect(h.updatedAt).not.toBeNull();
    });
    const table = await runCli(["status"], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" },
    });
    const rows = table.stdout.split("\n").filter((l) => l.startsWith("host"));
    expect(rows).toHaveLength(HOSTS);
    expect(rows.filter((l) => l.includes("(reboot required)"))).toHaveLength(7);
    expect(rows.some((l) => l.includes("(offline"))).toBe(false);

    // And all fifty show offline as soon as they are stopped.
    await Promise.all(publishers.splice(0).map((p) => p.stop("SIGTERM")));
    const after = await fleetStatus();
    expect(after).toHaveLength(HOSTS);
    expect(after.filter((h) => h.online !== false)).toEqual([]);
  }, 240_000);
});
