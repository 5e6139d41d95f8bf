/**
 * `ogygia publish` against a real ZooKeeper, run as a separate process:
 * `alive` is an ephemeral node of the publisher's session.
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
import { OGYGIA_BIN, baseEnv, runCli } from "./helpers/cli.js";
import { sleep, startProcess, waitFor, type ManagedProcess } from "./helpers/process.js";
import { startZooKeeper, type ZooKeeperServer } from "./helpers/zookeeper.js";

const HOST = "web01.example.com";

let zk: ZooKeeperServer;
const started: ManagedProcess[] = [];
const roots: BootRoot[] = [];

beforeAll(async () => {
  zk = await startZooKeeper();
});

afterEach(async () => {
  for (const proc of started) proc.child.kill("SIGCONT");
  await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
  await Promise.all(roots.splice(0).map((r) => r.remove()));
});

afterAll(async () => {
  await zk.stop();
});

async function standardRoot(): Promise<BootRoot> {
  const root = await standardBootRoot();
  roots.push(root);
  return root;
}

function config(namespace: string, leaseTtlSeconds = 2): Promise<string> {
  return publishConfig({ backend: "zookeeper", endpoint: zk.endpoint, namespace, leaseTtlSeconds });
}

function publisher(configFile: string, root: BootRoot): ManagedProcess {
  const proc = startPublisher({ config: configFile, root: root.root, host: HOST });
  started.push(proc);
  return proc;
}

async function node(namespace: string, field: string): Promise<string | null> {
  return (await zk.get(`${namespace}/${HOST}/${field}`))?.toString("utf8") ?? null;
}

async function waitAlive(
  namespace: string,
  proc: ManagedProcess,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    "the publisher's alive node",
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`publisher exited:\n${proc.output()}`);
      return (await node(namespace, "alive")) !== null ? true : undefined;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

async function statusOf(configFile: string): Promise<StatusJsonHost | undefined> {
  const result = await runCli(["status", "--json"], {
    env: { OGYGIA_CONFIG: configFile, OGYGIA_HOSTNAME: "observer.example.org" },
  });
  expect(result.code).toBe(0);
  return (JSON.parse(result.stdout) as { hosts: StatusJsonHost[] }).hosts.find(
    (h) => h.host === HOST,
  );
}

describe("ogygia publish with ZooKeeper", () => {
  it("publishes the states and shows a state link change within a second", async () => {
    const namespace = uniqueNamespace();
    const configFile = await config(namespace);
    const root = await standardRoot();
    const proc = publisher(configFile, root);
    await waitAlive(namespace, proc);
    expect(await node(namespace, "current")).toBe(REV.a);
    expect(await node(namespace, "nextboot")).toBe(REV.b);
    expect(await node(namespace, "reboot_required")).toBe("true");
    expect(await zk.ephemeralOwner(`${namespace}/${HOST}/alive`)).not.toBe("0".repeat(16));
    expect(await zk.ephemeralOwner(`${namespace}/${HOST}/current`)).toBe("0".repeat(16));

    await root.switchSystem("current", { revision: REV.c, kernel: "linux-6.6.1" });
    // The bound, as a bounded wait.
    await waitFor(
      "the new current revision in ZooKeeper",
      async () => ((await node(namespace, "current")) === REV.c ? true : undefined),
      { timeoutMs: 1000, intervalMs: 20 },
    );
    expect(await statusOf(configFile)).toMatchObject({
      current: REV.c,
      booted: REV.a,
      nextboot: REV.b,
      online: true,
      rebootRequired: true,
    });
  });

  it("shows offline at once after SIGTERM", async () => {
    const namespace = uniqueNamespace();
    // A session timeout far longer than the test: only closing it removes alive.
    const configFile = await config(namespace, 60);
    const root = await standardRoot();
    const proc = publisher(configFile, root);
    await waitAlive(namespace, proc);
    await proc.stop("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(await node(namespace, "alive")).toBeNull();
    expect(await statusOf(configFile)).toMatchObject({ current: REV.a, online: false });
  });

  it("shows offline after the session timeout when killed with SIGKILL", async () => {
    const namespace = uniqueNamespace();
    const configFile = await config(namespace, 4);
    const root = await standardRoot();
    const proc = publisher(configFile, root);
    await waitAlive(namespace, proc);
    proc.child.kill("SIGKILL");
    await proc.exited;
    expect(await node(namespace, "alive")).not.toBeNull();
    await waitFor(
      "the session to expire",
      async () => ((await node(namespace, "alive")) === null ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(await statusOf(configFile)).toMatchObject({ current: REV.a, online: false });
  });

  it("re-creates the ephemeral node in a new session after its session expires", async () => {
    const namespace = uniqueNamespace();
    const configFile = await config(namespace, 2);
    const root = await standardRoot();
    const proc = publisher(configFile, root);
    await waitAlive(namespace, proc);
    const path = `${namespace}/${HOST}/alive`;
    const owner = await zk.ephemeralOwner(path);
    // Freeze the publisher past its session timeout: the server expires the
    // session and deletes the node, and the frozen client cannot notice.
    proc.child.kill("SIGSTOP");
    try {
      await waitFor(
        "the session to expire",
        async () => ((await node(namespace, "alive")) === null ? true : undefined),
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      expect((await statusOf(configFile))?.online).toBe(false);
    } finally {
      proc.child.kill("SIGCONT");
    }
    await waitAlive(namespace, proc);
    const renewed = await zk.ephemeralOwner(path);
    expect(renewed).not.toBeNull();
    expect(renewed).not.toBe(owner);
    expect(await statusOf(configFile)).toMatchObject({ current: REV.a, online: true });
    expect(proc.output()).toMatch(/session expired|liveness lost/);
  });

  it("recovers after the server freezes past the session timeout, publishing changes made meanwhile", async () => {
    const namespace = uniqueNamespace();
    const configFile = await config(namespace, 2);
    const root = await standardRoot();
    const proc = publisher(configFile, root);
    await waitAlive(namespace, proc);
    zk.freeze();
    try {
      await root.switchSystem("current", { revision: REV.c, kernel: "linux-6.6.1" });
      await sleep(4000);
      expect(proc.child.exitCode).toBeNull();
    } finally {
      zk.thaw();
    }
    await waitFor(
      "the publisher to recover",
      async () =>
        (await node(namespace, "current")) === REV.c && (await node(namespace, "alive")) !== null
          ? true
          : undefined,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(await statusOf(configFile)).toMatchObject({ current: REV.c, online: true });
    const retries = proc
      .output()
      .split("\n")
      .filter((l) => l.includes("retrying")).length;
    expect(retries).toBeLessThan(20);
  });
});

describe("ogygia status --watch with ZooKeeper", () => {
  it("prints a new JSON line when a host changes, appears or goes away", async () => {
    const namespace = uniqueNamespace();
    const configFile = await config(namespace, 60);
    const root = await standardRoot();
    const watcher = startProcess(OGYGIA_BIN, ["status", "--watch", "--json"], {
      env: baseEnv({ OGYGIA_CONFIG: configFile, OGYGIA_HOSTNAME: "observer.example.org" }),
    });
    started.push(watcher);
    const seen = (predicate: (h: StatusJsonHost | undefined) => boolean) => () =>
      watcher
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .some((l) =>
          predicate(
            (JSON.parse(l) as { hosts: StatusJsonHost[] }).hosts.find((h) => h.host === HOST),
          ),
        )
        ? true
        : undefined;
    // The namespace does not exist yet: the watch must see it appear.
    await waitFor(
      "the first report",
      seen((h) => h === undefined),
    );
    const proc = publisher(configFile, root);
    await waitFor(
      "the host to appear online",
      seen((h) => h?.online === true),
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
});
