/**
 * `ogygia publish` against a real etcd, run as a separate process, observed
 * through etcd itself and through `ogygia status`.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  REV,
  publishConfig,
  standardBootRoot,
  startPublisher,
  uniqueNamespace,
  type BootRoot,
  type StatusJsonHost,
} from "./helpers/publish.js";
import { runCli } from "./helpers/cli.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";
import { sleep, startProcess, waitFor, type ManagedProcess } from "./helpers/process.js";
import { writeConfig } from "./helpers/system-root.js";
import { OGYGIA_BIN, baseEnv } from "./helpers/cli.js";

const HOST = "web01.example.com";
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

let etcd: EtcdServer;
const started: ManagedProcess[] = [];
const roots: BootRoot[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
  await Promise.all(roots.splice(0).map((r) => r.remove()));
});

afterAll(async () => {
  await etcd.stop();
});

async function standardRoot(): Promise<BootRoot> {
  const root = await standardBootRoot();
  roots.push(root);
  return root;
}

function publisher(config: string, root: BootRoot, host = HOST): ManagedProcess {
  const proc = startPublisher({ config, root: root.root, host });
  started.push(proc);
  return proc;
}

async function key(namespace: string, field: string, host = HOST): Promise<string | null> {
  return etcd.client.get(`${namespace}/${host}/${field}`).string();
}

/** Waits (bounded) until the publisher holds alive, i.e. has published. */
async function waitAlive(namespace: string, proc: ManagedProcess, host = HOST): Promise<void> {
  await waitFor(
    `${host} to publish alive`,
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`publisher exited:\n${proc.output()}`);
      return (await key(namespace, "alive", host)) !== null ? true : undefined;
    },
    { timeoutMs: 20_000 },
  );
}

async function status(config: string): Promise<{ hosts: StatusJsonHost[]; warnings: string[] }> {
  const result = await runCli(["status", "--json"], {
    env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" },
  });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as { hosts: StatusJsonHost[]; warnings: string[] };
}

async function statusOf(config: string, host = HOST): Promise<StatusJsonHost | undefined> {
  return (await status(config)).hosts.find((h) => h.host === host);
}

describe("ogygia publish with etcd", () => {
  it("publishes the three states, reboot_required, updated_at and alive", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    expect(await key(namespace, "current")).toBe(REV.a);
    expect(await key(namespace, "booted")).toBe(REV.a);
    expect(await key(namespace, "nextboot")).toBe(REV.b);
    expect(await key(namespace, "reboot_required")).toBe("true");
    expect(await key(namespace, "updated_at")).toMatch(RFC3339);
    expect(await statusOf(config)).toMatchObject({
      current: REV.a,
      booted: REV.a,
      nextboot: REV.b,
      online: true,
      rebootRequired: true,
      updatedAt: expect.stringMatching(RFC3339) as string,
    });
    const table = await runCli(["status"], {
      env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" },
    });
    expect(table.stdout).toMatch(
      /^web01\.example\.com \(reboot required\)\s+a1b2c3d4e5f6\s+a1b2c3d4e5f6\s+b2c3d4e5f6a1$/m,
    );
  });

  it("shows a state link change in status --json within a second, writing only what changed", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    const revisionOf = async (field: string): Promise<string | undefined> =>
      (await etcd.client.get(`${namespace}/${HOST}/${field}`).exec()).kvs[0]?.mod_revision;
    const bootedRevision = await revisionOf("booted");
    const nextbootRevision = await revisionOf("nextboot");

    await root.switchSystem("current", { revision: REV.c, kernel: "linux-6.6.1" });
    // The bound, as a bounded wait: the new revision is in etcd within a second.
    await waitFor(
      "the new current revision in etcd",
      async () => ((await key(namespace, "current")) === REV.c ? true : undefined),
      { timeoutMs: 1000, intervalMs: 20 },
    );
    expect((await statusOf(config))?.current).toBe(REV.c);
    // Only the changed key was written.
    expect(await revisionOf("booted")).toBe(bootedRevision);
    expect(await revisionOf("nextboot")).toBe(nextbootRevision);

    // A next boot with the booted kernel clears reboot_required.
    await root.switchSystem("nextboot", { revision: REV.c, kernel: "linux-6.6.1" });
    await waitFor(
      "reboot_required to become false",
      async () => ((await key(namespace, "reboot_required")) === "false" ? true : undefined),
      { timeoutMs: 1000, intervalMs: 20 },
    );
    expect(await statusOf(config)).toMatchObject({ nextboot: REV.c, rebootRequired: false });
  });

  it("deletes the key of a state that becomes unknown, so status shows unknown", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    await root.switchSystem("nextboot", null);
    await waitFor("nextboot to be deleted", async () =>
      (await key(namespace, "nextboot")) === null ? true : undefined,
    );
    // Without a next-boot system the reboot check is unknown too.
    expect(await key(namespace, "reboot_required")).toBeNull();
    expect(await statusOf(config)).toMatchObject({
      current: REV.a,
      nextboot: null,
      rebootRequired: null,
      online: true,
    });
  });

  it("shows offline at once after SIGTERM, keeping the last known states", async () => {
    const namespace = uniqueNamespace();
    // A TTL far longer than the test: only revocation can make the host offline.
    const config = await publishConfig({
      backend: "etcd",
      endpoint: etcd.endpoint,
      namespace,
      leaseTtlSeconds: 120,
    });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    await proc.stop("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(await key(namespace, "alive")).toBeNull();
    expect(await statusOf(config)).toMatchObject({ current: REV.a, online: false });
    expect(proc.output()).toContain("alive revoked");
  });

  it("shows offline after the lease TTL when killed with SIGKILL", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({
      backend: "etcd",
      endpoint: etcd.endpoint,
      namespace,
      leaseTtlSeconds: 5,
    });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    proc.child.kill("SIGKILL");
    await proc.exited;
    // Nobody revoked the lease: alive is still there until the TTL runs out.
    expect(await key(namespace, "alive")).not.toBeNull();
    await waitFor(
      "the lease to expire",
      async () => ((await key(namespace, "alive")) === null ? true : undefined),
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    expect(await statusOf(config)).toMatchObject({ current: REV.a, online: false });
  });

  it("re-creates alive under a new lease when its lease is revoked behind its back", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    const lease = (await etcd.client.get(`${namespace}/${HOST}/alive`).exec()).kvs[0]?.lease;
    expect(lease).toBeDefined();
    await etcd.client.leaseClient.leaseRevoke({ ID: lease ?? "0" });
    expect(await key(namespace, "alive")).toBeNull();
    await waitAlive(namespace, proc);
    const renewed = (await etcd.client.get(`${namespace}/${HOST}/alive`).exec()).kvs[0]?.lease;
    expect(renewed).not.toBe(lease);
    expect(proc.output()).toContain("liveness lost");
  });

  it("recovers when etcd stops and restarts, publishing a change made during the outage", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const proc = publisher(config, root);
    await waitAlive(namespace, proc);
    await etcd.pause();
    try {
      await root.switchSystem("current", { revision: REV.d, kernel: "linux-6.6.1" });
      // Long enough for several failed attempts.
      await sleep(3000);
      expect(proc.child.exitCode).toBeNull();
    } finally {
      await etcd.resume();
    }
    await waitFor(
      "the change made during the outage",
      async () =>
        (await key(namespace, "current")) === REV.d && (await key(namespace, "alive")) !== null
          ? true
          : undefined,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(await statusOf(config)).toMatchObject({ current: REV.d, online: true });
    const retries = proc
      .output()
      .split("\n")
      .filter((l) => l.includes("retrying")).length;
    // Backoff, not a busy loop: a handful of attempts over a few seconds.
    expect(retries).toBeGreaterThan(0);
    expect(retries).toBeLessThan(20);
    expect(proc.child.exitCode).toBeNull();
  });
});

describe("ogygia publish --once", () => {
  it("publishes once, reports what it wrote, and leaves the host offline", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const env = { OGYGIA_HOSTNAME: HOST };
    const first = await runCli(
      ["publish", "--once", "--json", "--root", root.root, "--config", config],
      {
        env,
      },
    );
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const json = JSON.parse(first.stdout) as {
      keys: Record<string, { value: string | null; change: string }>;
      alive: boolean;
      rebootRequired: boolean | null;
    };
    expect(json.keys.current).toEqual({ value: REV.a, change: "written" });
    expect(json.keys.reboot_required).toEqual({ value: "true", change: "written" });
    expect(json.rebootRequired).toBe(true);
    expect(json.alive).toBe(false);

    await root.switchSystem("booted", null);
    const second = await runCli(["publish", "--once", "--root", root.root, "--config", config], {
      env,
    });
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^current\s+a1b2c3d4e5f6\s+unchanged$/m);
    expect(second.stdout).toMatch(/^booted\s+unknown\s+deleted$/m);
    expect(second.stderr).toContain("No publisher daemon holds alive");
    expect(await key(namespace, "alive")).toBeNull();
    expect(await statusOf(config)).toMatchObject({ booted: null, online: false });
  });

  it("fails clearly when the configuration names no backend or etcd is unreachable", async () => {
    const root = await standardRoot();
    const empty = await writeConfig('[ogygia]\ndomain = "example.com"\n');
    const none = await runCli(["publish", "--once", "--root", root.root, "--config", empty]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("nothing to publish to");
    const closed = await writeConfig(
      '[ogygia.etcd]\nendpoints = ["http://127.0.0.1:1"]\ntimeout_seconds = 1\n',
    );
    const down = await runCli(["publish", "--once", "--root", root.root, "--config", closed]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("failed to connect to etcd");
    const usage = await runCli(["publish", "--json"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--json needs --once");
  });
});

describe("ogygia status --watch with etcd", () => {
  it("prints a new JSON line for each change until interrupted", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const watcher = startProcess(OGYGIA_BIN, ["status", "--watch", "--json"], {
      env: baseEnv({ OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" }),
    });
    started.push(watcher);
    const reports = (): { hosts: StatusJsonHost[] }[] =>
      watcher
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { hosts: StatusJsonHost[] });
    const seen = (predicate: (h: StatusJsonHost | undefined) => boolean) => () =>
      reports().some((r) => predicate(r.hosts.find((h) => h.host === HOST))) ? true : undefined;

    await waitFor("the first report", () => (reports().length > 0 ? true : undefined));
    const proc = publisher(config, root);
    await waitFor(
      "the publisher to appear",
      seen((h) => h?.online === true && h.current === REV.a),
    );
    await root.switchSystem("current", { revision: REV.c, kernel: "linux-6.6.1" });
    await waitFor(
      "the change",
      seen((h) => h?.current === REV.c),
    );
    await proc.stop("SIGTERM");
    await waitFor(
      "the host to go offline",
      seen((h) => h?.online === false),
    );
    await watcher.stop("SIGINT");
    expect(await watcher.exited).toBe(0);
  });

  it("prints each new table after a blank line when stdout is not a terminal", async () => {
    const namespace = uniqueNamespace();
    const config = await publishConfig({ backend: "etcd", endpoint: etcd.endpoint, namespace });
    const root = await standardRoot();
    const watcher = startProcess(OGYGIA_BIN, ["status", "--watch"], {
      env: baseEnv({ OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" }),
    });
    started.push(watcher);
    await waitFor("the first table", () =>
      watcher.output().includes("etcd fleet state") ? true : undefined,
    );
    const proc = publisher(config, root);
    await waitFor("a table with the host", () =>
      /^web01\.example\.com \(reboot required\)\s+a1b2c3d4e5f6/m.test(watcher.output())
        ? true
        : undefined,
    );
    await proc.stop("SIGTERM");
    await waitFor("a table with the host offline", () =>
      /^web01\.example\.com \(offline, reboot required\)/m.test(watcher.output())
        ? true
        : undefined,
    );
    await watcher.stop("SIGINT");
    expect(await watcher.exited).toBe(0);
    const output = watcher.output();
    expect(output).not.toContain("\u001b");
    expect(output).toContain("\n\netcd fleet state");
  });
});
