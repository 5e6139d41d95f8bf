import { mkdir, rename, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { connectError } from "../fleet/index.js";
import type { FleetField, FleetPublisher, HostChanges, HostValues } from "../fleet/index.js";
import { PublishDaemon, type DaemonLogger } from "./daemon.js";
import { tempDir } from "../../test/support/temp.js";

/** An in-memory backend that can be made to fail, counting every call. */
class FakePublisher implements FleetPublisher {
  readonly kind = "etcd" as const;
  readonly config = { endpoints: ["http://fake:2379"], namespace: "/ns", timeoutSeconds: 1 };
  readonly host = "web01";
  readonly store = new Map<FleetField, string>();
  failing = false;
  calls = 0;
  closedWith: { revoke: boolean } | undefined;
  private lost: ((reason: string) => void)[] = [];

  private enter(): void {
    this.calls += 1;
    if (this.failing) throw connectError("etcd", this.config, new Error("down"));
  }

  readHost(): Promise<HostValues> {
    this.enter();
    return Promise.resolve(
      new Map([...this.store].map(([k, v]) => [k, Buffer.from(v)] as [FleetField, Uint8Array])),
    );
  }

  write(changes: HostChanges): Promise<void> {
    this.enter();
    for (const [field, value] of changes.put) this.store.set(field, value);
    for (const field of changes.delete) this.store.delete(field);
    return Promise.resolve();
  }

  ensureAlive(value: string): Promise<void> {
    this.enter();
    this.store.set("alive", value);
    return Promise.resolve();
  }

  refreshAlive(): Promise<boolean> {
    this.enter();
    return Promise.resolve(this.store.has("alive"));
  }

  onLivenessLost(listener: (reason: string) => void): void {
    this.lost.push(listener);
  }

  loseLiveness(): void {
    this.store.delete("alive");
    for (const listener of this.lost) listener("session expired");
  }

  close(options: { revoke: boolean }): Promise<void> {
    this.closedWith = options;
    if (options.revoke) this.store.delete("alive");
    return Promise.resolve();
  }
}

const quiet: DaemonLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Polls `check` every 10 ms until it holds; fails after `ms`. Bounded. */
async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function makeRoot(
  revision: string,
): Promise<{ root: string; setCurrent: (rev: string) => Promise<void> }> {
  const root = await tempDir("daemon");
  await mkdir(path.join(root, "run"));
  await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
  let n = 0;
  const setCurrent = async (rev: string): Promise<void> => {
    n += 1;
    const system = path.join(root, `nix/store/system-${n}`);
    await mkdir(path.join(system, "sw/share/ogygia"), { recursive: true });
    await writeFile(path.join(system, "sw/share/ogygia/build-revision"), rev);
    await symlink(`/nix/store/system-${n}`, path.join(root, "run/tmp-link"));
    await rename(path.join(root, "run/tmp-link"), path.join(root, "run/current-system"));
  };
  await setCurrent(revision);
  return { root, setCurrent };
}

describe("PublishDaemon", () => {
  let running: { daemon: PublishDaemon; done: Promise<void> } | undefined;

  afterEach(async () => {
    running?.daemon.stop();
    await running?.done;
    running = undefined;
  });

  async function start(
    publisher: FakePublisher,
    root: string,
  ): Promise<{ daemon: PublishDaemon; done: Promise<void> }> {
    // A 0.3 s TTL: renewals and retries every 100 ms keep the test short.
    const daemon = new PublishDaemon({
      publisher,
      root,
      log: quiet,
      leaseTtlSeconds: 0.3,
      resyncIntervalSeconds: 3600,
    });
    running = { daemon, done: daemon.run() };
    await until("the first publication", () => publisher.store.has("alive"));
    return running;
  }

  it("publishes the states, then alive", async () => {
    const publisher = new FakePublisher();
    const { root } = await makeRoot("rev-a");
    await start(publisher, root);
    expect(publisher.store.get("current")).toBe("rev-a");
    expect(publisher.store.has("booted")).toBe(false);
    expect(publisher.store.get("updated_at")).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it("publishes a change made while the backend was down once it is back, without a busy loop", async () => {
    const publisher = new FakePublisher();
    const { root, setCurrent } = await makeRoot("rev-a");
    const { daemon } = await start(publisher, root);
    publisher.failing = true;
    const callsBefore = publisher.calls;
    await setCurrent("rev-b");
    daemon.markDirty();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // Retries are spaced by the backoff (100 ms here): about ten, never hundreds.
    expect(publisher.calls - callsBefore).toBeLessThan(25);
    expect(publisher.store.get("current")).toBe("rev-a");
    publisher.failing = false;
    await until("the change to arrive", () => publisher.store.get("current") === "rev-b");
  });

  it("re-creates alive after liveness is lost", async () => {
    const publisher = new FakePublisher();
    const { root } = await makeRoot("rev-a");
    await start(publisher, root);
    publisher.loseLiveness();
    expect(publisher.store.has("alive")).toBe(false);
    await until("alive again", () => publisher.store.has("alive"));
  });

  it("revokes alive when stopped", async () => {
    const publisher = new FakePublisher();
    const { root } = await makeRoot("rev-a");
    const { daemon, done } = await start(publisher, root);
    daemon.stop();
    await done;
    running = undefined;
    expect(publisher.closedWith).toEqual({ revoke: true });
    expect(publisher.store.has("alive")).toBe(false);
    expect(publisher.store.get("current")).toBe("rev-a");
  });
});
