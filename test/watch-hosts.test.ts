/**
 * The etcd backend's host watch against a real etcd: changes applied from
 * the watch's own events (puts, deletes, a lease ending), snapshots that
 * later changes leave alone, and a full read again after a compaction or
 * an outage.
 */

import { execFileSync } from "node:child_process";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { openFleetBackend, type FleetBackend, type FleetSnapshot } from "../src/fleet/index.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";

const NS = "/watch/versions";
/** A hang guard, not a timing assertion: how long to wait for a snapshot before failing. */
const GUARD_MS = 20_000;

function text(snapshot: FleetSnapshot, host: string, field: string): string | undefined {
  const raw = snapshot.hosts.get(host)?.get(field as never);
  return raw === undefined ? undefined : Buffer.from(raw).toString();
}

/** Collects a watch's snapshots and errors; `until` waits for a matching one. */
function recorder(): {
  snapshots: FleetSnapshot[];
  errors: unknown[];
  until(test: (s: FleetSnapshot) => boolean, what: string): Promise<FleetSnapshot>;
  untilError(): Promise<unknown>;
  handlers: { onSnapshot(s: FleetSnapshot): void; onError(e: unknown): void };
} {
  const snapshots: FleetSnapshot[] = [];
  const errors: unknown[] = [];
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  const waitFor = <T>(find: () => T | undefined, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${what} within the hang guard`));
      }, GUARD_MS);
      const check = (): void => {
        const found = find();
        if (found === undefined) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      waiters.add(check);
      check();
    });
  return {
    snapshots,
    errors,
    until: (test, what) => waitFor(() => snapshots.findLast(test), what),
    untilError: () => waitFor(() => errors.at(-1), "error"),
    handlers: {
      onSnapshot(s) {
        snapshots.push(s);
        wake();
      },
      onError(e) {
        errors.push(e);
        wake();
      },
    },
  };
}

describe("etcd host watch (real etcd)", () => {
  let etcd: EtcdServer;
  let backend: FleetBackend;

  beforeAll(async () => {
    etcd = await startEtcd();
    const opened = await openFleetBackend({
      etcd: { endpoints: [etcd.endpoint], namespace: NS, timeoutSeconds: 3 },
    });
    if (!opened) throw new Error("no backend opened");
    backend = opened;
  });
  afterAll(async () => {
    await backend.close();
    await etcd.stop();
  });

  it("applies puts, deletes and a lease's end from the watch's events", async () => {
    await etcd.client.put(`${NS}/a/current`, "rev-a1");
    const rec = recorder();
    const watch = backend.watchHosts(rec.handlers);
    try {
      const first = await rec.until((s) => text(s, "a", "current") === "rev-a1", "first snapshot");
      expect(first.hosts.has("b")).toBe(false);

      await etcd.client.put(`${NS}/b/current`, "rev-b1");
      const withB = await rec.until((s) => text(s, "b", "current") === "rev-b1", "b's put");
      expect(text(withB, "a", "current")).toBe("rev-a1");

      // Keys outside the layout never become hosts.
      await etcd.client.put(`${NS}/b/current/deeper`, "x");
      await etcd.client.put(`${NS}/a/current`, "rev-a2");
      const a2 = await rec.until((s) => text(s, "a", "current") === "rev-a2", "a's second put");
      expect([...a2.hosts.keys()].sort()).toEqual(["a", "b"]);
      // A snapshot delivered earlier is never changed afterwards.
      expect(text(first, "a", "current")).toBe("rev-a1");
      expect(first.hosts.has("b")).toBe(false);

      // `alive` under a lease: revoking the lease deletes it, the watch sees it.
      const lease = await etcd.client.raw.leaseGrant(60);
      await etcd.client.raw.put({
        key: Buffer.from(`${NS}/b/alive`),
        value: Buffer.from("1"),
        lease: lease.ID,
      });
      await rec.until((s) => text(s, "b", "alive") === "1", "b alive");
      await etcd.client.revokeLease(lease.ID.toString());
      await rec.until(
        (s) => s.hosts.has("b") && text(s, "b", "alive") === undefined,
        "b's lease end",
      );

      // Deleting a host's last key removes the host.
      execFileSync("etcdctl", ["--endpoints", etcd.endpoint, "del", "--prefix", `${NS}/b/`]);
      await rec.until((s) => !s.hosts.has("b"), "b's removal");
    } finally {
      await watch.close();
    }
  });

  it("reads the whole namespace again after etcd comes back", async () => {
    await etcd.client.put(`${NS}/c/current`, "rev-c1");
    const rec = recorder();
    const watch = backend.watchHosts(rec.handlers);
    try {
      await rec.until((s) => text(s, "c", "current") === "rev-c1", "c");
      await etcd.pause();
      await rec.untilError();
      await etcd.resume();
      await etcd.client.put(`${NS}/c/current`, "rev-c2");
      const after = await rec.until((s) => text(s, "c", "current") === "rev-c2", "c after restart");
      expect(text(after, "a", "current")).toBe("rev-a2");
    } finally {
      await watch.close();
    }
  });
});
