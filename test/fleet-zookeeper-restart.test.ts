/**
 * `ogygia publish` on ZooKeeper while its real server freezes, stops and
 * starts again: the publisher abandons connection attempts that time out
 * (clients that never connected), and must neither crash nor stall when the
 * server answers one of them afterwards.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import {
  REV,
  publishConfig,
  standardBootRoot,
  startPublisher,
  uniqueNamespace,
  type BootRoot,
} from "./helpers/publish.js";
import { connectZkSession } from "../src/fleet/index.js";
import { sleep, waitFor, type ManagedProcess } from "./helpers/process.js";
import { startZooKeeper, type ZooKeeperServer } from "./helpers/zookeeper.js";

const HOST = "web01.example.com";

describe("ogygia publish through ZooKeeper restarts", () => {
  let zk: ZooKeeperServer;
  const started: ManagedProcess[] = [];
  const roots: BootRoot[] = [];

  beforeAll(async () => {
    zk = await startZooKeeper();
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop("SIGKILL")));
    await Promise.all(roots.splice(0).map((r) => r.remove()));
  });

  afterAll(async () => {
    await zk.stop();
  });

  async function key(namespace: string, field: string): Promise<string | null> {
    return (await zk.get(`${namespace}/${HOST}/${field}`))?.toString("utf8") ?? null;
  }

  /** Waits until the publisher holds alive and `current` is `revision`; fails if it exited. */
  async function waitPublished(
    namespace: string,
    proc: ManagedProcess,
    revision: string,
  ): Promise<void> {
    await waitFor(
      `${HOST} to publish ${revision} with alive`,
      async () => {
        if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
          throw new Error(`publisher exited:\n${proc.output()}`);
        }
        return (await key(namespace, "current")) === revision &&
          (await key(namespace, "alive")) !== null
          ? true
          : undefined;
      },
      { timeoutMs: 40_000, intervalMs: 200 },
    );
  }

  it("gives up connection attempts to a frozen server without crashing when it answers later", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      uncaught.push(err);
    };
    process.on("uncaughtException", onUncaught);
    try {
      zk.freeze();
      try {
        for (let i = 0; i < 10; i++) {
          await expect(connectZkSession([zk.endpoint], 100)).rejects.toThrow(/no answer within/);
        }
      } finally {
        zk.thaw();
      }
      // The server now answers the handshakes; nobody may read them.
      const session = await connectZkSession([zk.endpoint], 10_000);
      expect(await session.exists("/")).not.toBeNull();
      session.close();
      await sleep(1500);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
    expect(uncaught).toEqual([]);
  });

  it("survives the server freezing, stopping and restarting, and publishes what changed meanwhile", async () => {
    const namespace = uniqueNamespace();
    // A 1-second timeout: many connection attempts are abandoned during each outage.
    const config = await publishConfig({
      backend: "zookeeper",
      endpoint: zk.endpoint,
      namespace,
      timeoutSeconds: 1,
      leaseTtlSeconds: 2,
    });
    const root = await standardBootRoot();
    roots.push(root);
    const proc = startPublisher({ config, root: root.root, host: HOST });
    started.push(proc);
    await waitPublished(namespace, proc, REV.a);

    // Frozen: connections are accepted and never answered, then answered
    // late. Thawed just after the publisher gave up an attempt (it logs
    // "retrying"), so that the server answers a client it abandoned.
    zk.freeze();
    try {
      await root.switchSystem("current", { revision: REV.b, kernel: "linux-6.6.1" });
      const retries = (): number => proc.output().split("retrying").length;
      const before = retries();
      await waitFor("two abandoned attempts", () => (retries() >= before + 2 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 10,
      });
    } finally {
      zk.thaw();
    }
    await waitPublished(namespace, proc, REV.b);

    // Stopped and started again, twice: the new server answers abandoned attempts.
    for (const revision of [REV.c, REV.d]) {
      await zk.pause();
      try {
        await root.switchSystem("current", { revision, kernel: "linux-6.6.1" });
        await sleep(2500);
      } finally {
        await zk.resume();
      }
      await waitPublished(namespace, proc, revision);
    }
    expect(proc.output()).not.toMatch(/Unknown code|internal error/);
    expect(proc.child.exitCode).toBeNull();
  });
});
