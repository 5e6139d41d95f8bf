/**
 * The coordination interface against real etcd and ZooKeeper, one suite for
 * both: compare-and-swap (also raced from two connections), leases and
 * their keys, watches from a revision, and locks. No assertion is on
 * timing; every wait and loop is bounded.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { OgygiaError } from "../src/core/index.js";
import {
  openCoordinator,
  type Coordinator,
  type Revision,
  type WatchEvent,
} from "../src/fleet/index.js";
import {
  COORDINATION_BACKENDS,
  startHolder,
  type CoordinationServer,
  type Holder,
} from "./helpers/coordination.js";
import { waitFor } from "./helpers/process.js";

const encoder = new TextEncoder();
const iterate = <T>(iterable: AsyncIterable<T>): AsyncIterator<T> =>
  iterable[Symbol.asyncIterator]();
const text = (value: Uint8Array): string => new TextDecoder().decode(value);

/** The shortest lease both servers grant in these tests (ZooKeeper: tickTime 500, min 1000 ms). */
const SHORT_TTL_MS = 2000;

/** Upper bound for anything that waits on a lease to expire. */
const EXPIRY_BOUND_MS = 30_000;

describe.each(COORDINATION_BACKENDS)("coordination over $kind", (backend) => {
  let server: CoordinationServer;
  const open: Coordinator[] = [];
  const holders: Holder[] = [];
  let keyCount = 0;

  /** A key no other test uses. */
  const freshKey = (name: string): string => `/ogygia-test/coord/${name}-${++keyCount}`;

  const connect = async (): Promise<Coordinator> => {
    const coordinator = await openCoordinator(backend.kind, server.config);
    open.push(coordinator);
    return coordinator;
  };

  beforeAll(async () => {
    server = await backend.start();
  });

  afterEach(async () => {
    await Promise.all(holders.splice(0).map((h) => h.kill()));
    await Promise.all(open.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await server.stop();
  });

  describe("compareAndSet", () => {
    it("creates a missing key once, then writes only at the version it expects", async () => {
      const c = await connect();
      const key = freshKey("cas");
      expect(await c.get(key)).toMatchObject({ entry: null });

      const created = await c.compareAndSet(key, "absent", encoder.encode("one"));
      if (!created.won) throw new Error("the creation lost");
      expect(await c.compareAndSet(key, "absent", encoder.encode("again"))).toEqual({ won: false });

      const read = await c.get(key);
      expect(read.entry && text(read.entry.value)).toBe("one");
      expect(read.entry?.version).toBe(created.version);

      const updated = await c.compareAndSet(
        key,
        { version: created.version },
        encoder.encode("two"),
      );
      if (!updated.won) throw new Error("the update lost");
      expect(updated.version).toBeGreaterThan(created.version);
      // The version it replaced is stale now.
      expect(await c.compareAndSet(key, { version: created.version }, encoder.encode("x"))).toEqual(
        {
          won: false,
        },
      );
      expect(text((await c.get(key)).entry?.value ?? new Uint8Array())).toBe("two");

      expect(await c.compareAndDelete(key, { version: created.version })).toBe(false);
      expect(await c.compareAndDelete(key, { version: updated.version })).toBe(true);
      expect((await c.get(key)).entry).toBeNull();
      expect(await c.compareAndSet(key, { version: updated.version }, encoder.encode("y"))).toEqual(
        {
          won: false,
        },
      );
    });

    it("gives a key created again a version it never had", async () => {
      const c = await connect();
      const key = freshKey("recreate");
      const first = await c.compareAndSet(key, "absent", encoder.encode("a"));
      if (!first.won) throw new Error("the creation lost");
      expect(await c.compareAndDelete(key, { version: first.version })).toBe(true);
      const second = await c.compareAndSet(key, "absent", encoder.encode("a"));
      if (!second.won) throw new Error("the second creation lost");
      expect(second.version).toBeGreaterThan(first.version);
      expect(await c.compareAndSet(key, { version: first.version }, encoder.encode("b"))).toEqual({
        won: false,
      });
    });

    it("lets exactly one of two connections win each race for the same key", async () => {
      const [a, b] = await Promise.all([connect(), connect()]);
      const keys = Array.from({ length: 20 }, () => freshKey("race"));
      const results = await Promise.all(
        keys.map(async (key) => {
          const [wonA, wonB] = await Promise.all([
            a.compareAndSet(key, "absent", encoder.encode("a")),
            b.compareAndSet(key, "absent", encoder.encode("b")),
          ]);
          const stored = await a.get(key);
          return {
            wonA: wonA.won,
            wonB: wonB.won,
            stored: text(stored.entry?.value ?? new Uint8Array()),
          };
        }),
      );
      for (const { wonA, wonB, stored } of results) {
        expect(Number(wonA) + Number(wonB)).toBe(1);
        expect(stored).toBe(wonA ? "a" : "b");
      }
    });

    it("loses no increment when two connections race read-modify-write loops", async () => {
      const [a, b] = await Promise.all([connect(), connect()]);
      const key = freshKey("counter");
      const target = 30;
      const maxAttempts = 1000;
      expect((await a.compareAndSet(key, "absent", encoder.encode("0"))).won).toBe(true);

      /** Increments until the counter reaches `target`; bounded by `maxAttempts`. */
      const increment = async (c: Coordinator): Promise<{ wins: number; attempts: number }> => {
        let wins = 0;
        let attempts = 0;
        while (attempts < maxAttempts) {
          attempts += 1;
          const { entry } = await c.get(key);
          if (!entry) throw new Error("the counter vanished");
          const value = Number(text(entry.value));
          if (value >= target) break;
          const result = await c.compareAndSet(
            key,
            { version: entry.version },
            encoder.encode(String(value + 1)),
          );
          if (result.won) wins += 1;
        }
        return { wins, attempts };
      };

      const [ra, rb] = await Promise.all([increment(a), increment(b)]);
      // Both loops stopped by themselves, on the counter, not on the bound.
      expect(ra.attempts).toBeLessThan(maxAttempts);
      expect(rb.attempts).toBeLessThan(maxAttempts);
      expect(ra.wins + rb.wins).toBe(target);
      expect(text((await a.get(key)).entry?.value ?? new Uint8Array())).toBe(String(target));
    });
  });

  describe("compareAndSetMany", () => {
    it("writes, creates and deletes several keys at once, or nothing when one is not as expected", async () => {
      const c = await connect();
      const dir = freshKey("many");
      const [k1, k2, k3] = [`${dir}/a`, `${dir}/b`, `${dir}/c`];
      const first = await c.compareAndSet(k1, "absent", encoder.encode("a1"));
      if (!first.won) throw new Error("the creation lost");
      const removed = await c.compareAndSet(k3, "absent", encoder.encode("c1"));
      if (!removed.won) throw new Error("the creation lost");

      // A stale version on one key: nothing at all is written.
      expect(
        await c.compareAndSetMany([
          { key: k1, expected: { version: first.version + 1000n }, value: encoder.encode("a2") },
          { key: k2, expected: "absent", value: encoder.encode("b1") },
        ]),
      ).toEqual({ won: false });
      expect(text((await c.get(k1)).entry?.value ?? new Uint8Array())).toBe("a1");
      expect((await c.get(k2)).entry).toBeNull();
      // A key expected absent that exists: nothing written either.
      expect(
        await c.compareAndSetMany([
          { key: k1, expected: { version: first.version }, value: encoder.encode("a2") },
          { key: k3, expected: "absent", value: encoder.encode("c2") },
        ]),
      ).toEqual({ won: false });
      expect(text((await c.get(k1)).entry?.value ?? new Uint8Array())).toBe("a1");

      const done = await c.compareAndSetMany([
        { key: k1, expected: { version: first.version }, value: encoder.encode("a2") },
        { key: k2, expected: "absent", value: encoder.encode("b1") },
        { key: k3, expected: { version: removed.version }, value: null },
        { key: `${dir}/never`, expected: "absent", value: null },
      ]);
      if (!done.won) throw new Error("the write lost");
      const [v1, v2, v3, v4] = done.versions;
      expect(v3).toBe("absent");
      expect(v4).toBe("absent");
      // One write: both keys carry its version, newer than what they had.
      expect(v1).toBe(v2);
      expect(typeof v1 === "bigint" && v1 > removed.version).toBe(true);
      const [r1, r2] = await Promise.all([c.get(k1), c.get(k2)]);
      expect(text(r1.entry?.value ?? new Uint8Array())).toBe("a2");
      expect(r1.entry?.version).toBe(v1);
      expect(text(r2.entry?.value ?? new Uint8Array())).toBe("b1");
      expect(r2.entry?.version).toBe(v2);
      expect((await c.get(k3)).entry).toBeNull();
      // The versions returned are the ones to expect next time.
      if (typeof v1 !== "bigint") throw new Error("no version");
      const again = await c.compareAndSetMany([
        { key: k1, expected: { version: v1 }, value: encoder.encode("a3") },
      ]);
      expect(again.won).toBe(true);
    });

    it("lets one of two connections win a race over the same keys", async () => {
      const [a, b] = await Promise.all([connect(), connect()]);
      const dir = freshKey("many-race");
      const keys = [`${dir}/x`, `${dir}/y`];
      const write = (c: Coordinator, value: string) =>
        c.compareAndSetMany(
          keys.map((key) => ({ key, expected: "absent" as const, value: encoder.encode(value) })),
        );
      const [wa, wb] = await Promise.all([write(a, "a"), write(b, "b")]);
      expect([wa.won, wb.won].filter(Boolean)).toHaveLength(1);
      const winner = wa.won ? "a" : "b";
      for (const key of keys) {
        expect(text((await a.get(key)).entry?.value ?? new Uint8Array())).toBe(winner);
      }
    });
  });

  describe("leases", () => {
    it("deletes the lease's keys when it is revoked, and reports the lease lost", async () => {
      const c = await connect();
      const other = await connect();
      const lease = await c.grantLease({ ttlMs: SHORT_TTL_MS });
      expect(lease.ttlMs).toBeGreaterThanOrEqual(1000);
      const key = freshKey("leased");
      const plain = freshKey("plain");
      expect((await c.compareAndSet(key, "absent", encoder.encode("v"), { lease })).won).toBe(true);
      expect((await c.compareAndSet(plain, "absent", encoder.encode("v"))).won).toBe(true);
      expect((await other.get(key)).entry).not.toBeNull();
      expect(lease.lost.aborted).toBe(false);

      await lease.revoke();
      expect(lease.lost.aborted).toBe(true);
      expect((await other.get(key)).entry).toBeNull();
      expect((await other.get(plain)).entry).not.toBeNull();
    });

    it("keeps a key tied to the lease when it is updated, and drops it with the lease", async () => {
      const c = await connect();
      const lease = await c.grantLease({ ttlMs: SHORT_TTL_MS });
      const key = freshKey("leased-update");
      const created = await c.compareAndSet(key, "absent", encoder.encode("v1"), { lease });
      if (!created.won) throw new Error("the creation lost");
      const updated = await c.compareAndSet(
        key,
        { version: created.version },
        encoder.encode("v2"),
      );
      expect(updated.won).toBe(true);
      await lease.revoke();
      expect((await c.get(key)).entry).toBeNull();
    });

    it("deletes the keys of a holder that died once its lease expires", async () => {
      const c = await connect();
      const key = freshKey("expiring");
      const holder = await startHolder({
        kind: backend.kind,
        config: server.config,
        key,
        holder: "doomed",
        ttlMs: SHORT_TTL_MS,
        lock: false,
      });
      holders.push(holder);
      expect((await c.get(key)).entry?.version).toBe(holder.version);
      await holder.kill();
      await waitFor(
        `${key} to expire`,
        async () => ((await c.get(key)).entry === null ? true : undefined),
        { timeoutMs: EXPIRY_BOUND_MS, intervalMs: 200 },
      );
    });

    it("reports its leases lost when the coordinator closes", async () => {
      const c = await openCoordinator(backend.kind, server.config);
      const lease = await c.grantLease({ ttlMs: SHORT_TTL_MS });
      await c.close();
      expect(lease.lost.aborted).toBe(true);
    });
  });

  describe("watch", () => {
    /** Collects `count` events, or fewer if the watch ends first. */
    const take = async (
      events: AsyncIterator<WatchEvent>,
      count: number,
    ): Promise<WatchEvent[]> => {
      const taken: WatchEvent[] = [];
      while (taken.length < count) {
        const next = await events.next();
        if (next.done === true) break;
        taken.push(next.value);
      }
      return taken;
    };

    const describeEvent = (e: WatchEvent): string =>
      e.type === "put" ? `put ${text(e.value)}@${e.version}` : `delete@${e.revision}`;

    it("delivers exactly the changes after the revision, in order", async () => {
      const c = await connect();
      const writer = await connect();
      const key = freshKey("watched");
      const v0 = await writer.compareAndSet(key, "absent", encoder.encode("v0"));
      if (!v0.won) throw new Error("the creation lost");
      const stop = new AbortController();
      const events = iterate(c.watch(key, { after: v0.version, signal: stop.signal }));
      try {
        // Each write waits for the previous event, so that ZooKeeper, which
        // keeps no history, sees each one too.
        const v1 = await writer.compareAndSet(key, { version: v0.version }, encoder.encode("v1"));
        if (!v1.won) throw new Error("v1 lost");
        const first = await take(events, 1);
        const v2 = await writer.compareAndSet(key, { version: v1.version }, encoder.encode("v2"));
        if (!v2.won) throw new Error("v2 lost");
        const second = await take(events, 1);
        expect(await writer.compareAndDelete(key, { version: v2.version })).toBe(true);
        const third = await take(events, 1);
        const seen = [...first, ...second, ...third];
        expect(seen.map(describeEvent).map((s) => s.replace(/@\d+/, ""))).toEqual([
          "put v1",
          "put v2",
          "delete",
        ]);
        expect(seen[0]).toMatchObject({ type: "put", version: v1.version });
        expect(seen[1]).toMatchObject({ type: "put", version: v2.version });
        const deleted = seen[2];
        if (deleted?.type !== "delete") throw new Error("no delete event");
        expect(deleted.revision).toBeGreaterThan(v2.version);
      } finally {
        stop.abort();
        await events.return?.();
      }
    });

    it(
      backend.replaysHistory
        ? "replays every change made before the watch started"
        : "delivers the latest state for changes made before the watch started",
      async () => {
        const c = await connect();
        const key = freshKey("history");
        const v0 = await c.compareAndSet(key, "absent", encoder.encode("v0"));
        if (!v0.won) throw new Error("the creation lost");
        const v1 = await c.compareAndSet(key, { version: v0.version }, encoder.encode("v1"));
        if (!v1.won) throw new Error("v1 lost");
        const v2 = await c.compareAndSet(key, { version: v1.version }, encoder.encode("v2"));
        if (!v2.won) throw new Error("v2 lost");
        const stop = new AbortController();
        const events = iterate(c.watch(key, { after: v0.version, signal: stop.signal }));
        try {
          const expected = backend.replaysHistory ? ["v1", "v2"] : ["v2"];
          const seen = await take(events, expected.length);
          expect(seen.map((e) => (e.type === "put" ? text(e.value) : "delete"))).toEqual(expected);
          expect(seen.at(-1)).toMatchObject({ type: "put", version: v2.version });
        } finally {
          stop.abort();
          await events.return?.();
        }
      },
    );

    it("sees a missing key created after the read, and ends when aborted", async () => {
      const c = await connect();
      const key = freshKey("missing");
      const read = await c.get(key);
      expect(read.entry).toBeNull();
      const stop = new AbortController();
      const seen: WatchEvent[] = [];
      const watching = (async () => {
        for await (const event of c.watch(key, { after: read.revision, signal: stop.signal })) {
          seen.push(event);
          stop.abort();
        }
      })();
      const created = await c.compareAndSet(key, "absent", encoder.encode("new"));
      if (!created.won) throw new Error("the creation lost");
      await watching;
      expect(seen).toEqual([
        { type: "put", key, value: expect.anything() as unknown, version: created.version },
      ]);
    });

    it("versions increase strictly across a burst of writes", async () => {
      const c = await connect();
      const key = freshKey("burst");
      const start = await c.get(key);
      const stop = new AbortController();
      const events = iterate(c.watch(key, { after: start.revision, signal: stop.signal }));
      let version: Revision | undefined;
      for (let i = 0; i < 10; i++) {
        const result = await c.compareAndSet(
          key,
          version === undefined ? "absent" : { version },
          encoder.encode(`b${i}`),
        );
        if (!result.won) throw new Error(`write ${i} lost`);
        version = result.version;
      }
      try {
        // Up to ten events (ZooKeeper may coalesce); the last is the last write.
        const seen: WatchEvent[] = [];
        for (let i = 0; i < 10; i++) {
          const [event] = await take(events, 1);
          if (!event) break;
          seen.push(event);
          if (event.type === "put" && event.version === version) break;
        }
        const versions = seen.map((e) => (e.type === "put" ? e.version : e.revision));
        expect(versions).toEqual([...versions].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
        expect(new Set(versions).size).toBe(versions.length);
        expect(seen.at(-1)).toMatchObject({ type: "put", version });
        if (backend.replaysHistory) expect(seen).toHaveLength(10);
      } finally {
        stop.abort();
        await events.return?.();
      }
    });
  });

  describe("locks", () => {
    it("gives a contended lock to exactly one holder, then to the other after release", async () => {
      const [a, b] = await Promise.all([connect(), connect()]);
      const [leaseA, leaseB] = await Promise.all([
        a.grantLease({ ttlMs: SHORT_TTL_MS }),
        b.grantLease({ ttlMs: SHORT_TTL_MS }),
      ]);
      const key = freshKey("lock");
      const [lockA, lockB] = await Promise.all([
        a.tryAcquireLock(key, { holder: "host-a", lease: leaseA }),
        b.tryAcquireLock(key, { holder: "host-b", lease: leaseB }),
      ]);
      expect(Number(lockA !== null) + Number(lockB !== null)).toBe(1);
      const winner = lockA ?? lockB;
      if (!winner) throw new Error("nobody got the lock");
      const [loser, loserLease, loserName] =
        winner === lockA ? [b, leaseB, "host-b"] : [a, leaseA, "host-a"];
      expect(await a.lockHolder(key)).toEqual({ holder: winner.holder, version: winner.version });

      const waiting = loser.acquireLock(key, {
        holder: loserName,
        lease: loserLease,
        waitMs: 30_000,
      });
      expect(await winner.release()).toBe(true);
      const second = await waiting;
      expect(second.holder).toBe(loserName);
      expect(await b.lockHolder(key)).toEqual({ holder: loserName, version: second.version });
      // The first holder's version is gone: releasing again changes nothing.
      expect(await winner.release()).toBe(false);
      expect(await second.release()).toBe(true);
      expect(await a.lockHolder(key)).toBeNull();
    });

    it("passes the lock on when its holder dies and its lease expires", async () => {
      const c = await connect();
      const key = freshKey("lock-expiry");
      const holder = await startHolder({
        kind: backend.kind,
        config: server.config,
        key,
        holder: "crashing-host",
        ttlMs: SHORT_TTL_MS,
        lock: true,
      });
      holders.push(holder);
      expect(await c.lockHolder(key)).toEqual({ holder: "crashing-host", version: holder.version });
      // Only the crashed holder's lease has to expire; the survivor's outlives
      // the wait even on a loaded machine.
      const lease = await c.grantLease({ ttlMs: EXPIRY_BOUND_MS });
      expect(await c.tryAcquireLock(key, { holder: "survivor", lease })).toBeNull();
      await holder.kill();
      const lock = await c.acquireLock(key, {
        holder: "survivor",
        lease,
        waitMs: EXPIRY_BOUND_MS,
      });
      expect(await c.lockHolder(key)).toEqual({ holder: "survivor", version: lock.version });
    });

    it("gives up at the deadline while the lock stays held", async () => {
      const [a, b] = await Promise.all([connect(), connect()]);
      const key = freshKey("lock-timeout");
      const held = await a.tryAcquireLock(key, {
        holder: "keeper",
        lease: await a.grantLease({ ttlMs: SHORT_TTL_MS }),
      });
      expect(held).not.toBeNull();
      const lease = await b.grantLease({ ttlMs: SHORT_TTL_MS });
      const attempt = b.acquireLock(key, { holder: "impatient", lease, waitMs: 300 });
      await expect(attempt).rejects.toBeInstanceOf(OgygiaError);
      await expect(attempt).rejects.toMatchObject({ code: "ERR_OGYGIA_FLEET_LOCK_TIMEOUT" });
      expect(await b.lockHolder(key)).toMatchObject({ holder: "keeper" });
    });
  });
});
