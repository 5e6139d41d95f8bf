import { describe, expect, it } from "vitest";

import type { Lease, Revision, WatchEvent } from "./coordination.js";
import { eventStream, type EventSink } from "./event-stream.js";
import { acquireLock, lockHolder, tryAcquireLock, type LockPrimitives } from "./lock.js";

/** The primitives over a map, with one global revision like the real stores. */
function memoryStore(): LockPrimitives & { deleteKey(key: string): void } {
  const entries = new Map<string, { value: Uint8Array; version: Revision }>();
  const sinks = new Set<{ key: string; sink: EventSink<WatchEvent> }>();
  let revision = 0n;
  const emit = (event: WatchEvent): void => {
    for (const s of sinks) if (s.key === event.key) s.sink.push(event);
  };
  const remove = (key: string): void => {
    entries.delete(key);
    revision += 1n;
    emit({ type: "delete", key, revision });
  };
  return {
    get: (key) => {
      const entry = entries.get(key);
      return Promise.resolve({
        entry: entry ? { key, ...entry } : null,
        revision: entry?.version ?? revision,
      });
    },
    compareAndSet: (key, expected, value) => {
      const current = entries.get(key);
      const matches =
        expected === "absent" ? current === undefined : current?.version === expected.version;
      if (!matches) return Promise.resolve({ won: false });
      revision += 1n;
      entries.set(key, { value, version: revision });
      emit({ type: "put", key, value, version: revision });
      return Promise.resolve({ won: true, version: revision });
    },
    compareAndDelete: (key, expected) => {
      if (entries.get(key)?.version !== expected.version) return Promise.resolve(false);
      remove(key);
      return Promise.resolve(true);
    },
    watch: (key, options) =>
      eventStream<WatchEvent>(
        { signal: options.signal, maxBuffered: 100, overflowError: () => new Error("overflow") },
        (sink) => {
          const entry = { key, sink };
          sinks.add(entry);
          return () => {
            sinks.delete(entry);
            return Promise.resolve();
          };
        },
      ),
    deleteKey: remove,
  };
}

function lease(): Lease & { end(): void } {
  const controller = new AbortController();
  return {
    id: "1",
    ttlMs: 1000,
    lost: controller.signal,
    revoke: () => {
      controller.abort(new Error("revoked"));
      return Promise.resolve();
    },
    end: () => {
      controller.abort(new Error("expired"));
    },
  };
}

describe("locks over compare-and-swap", () => {
  it("gives the lock to the first taker and shows who holds it", async () => {
    const store = memoryStore();
    const first = await tryAcquireLock(store, "/l", { holder: "a", lease: lease() });
    expect(first).toMatchObject({ key: "/l", holder: "a" });
    expect(await tryAcquireLock(store, "/l", { holder: "b", lease: lease() })).toBeNull();
    expect(await lockHolder(store, "/l")).toEqual({ holder: "a", version: first?.version });
  });

  it("releases only the acquisition it made", async () => {
    const store = memoryStore();
    const first = await tryAcquireLock(store, "/l", { holder: "a", lease: lease() });
    // The key vanished (its lease ended) and someone else took the lock.
    store.deleteKey("/l");
    const second = await tryAcquireLock(store, "/l", { holder: "b", lease: lease() });
    expect(await first?.release()).toBe(false);
    expect(await lockHolder(store, "/l")).toMatchObject({ holder: "b" });
    expect(await second?.release()).toBe(true);
    expect(await lockHolder(store, "/l")).toBeNull();
  });

  it("waits for the holder's key to go, then takes the lock", async () => {
    const store = memoryStore();
    const first = await tryAcquireLock(store, "/l", { holder: "a", lease: lease() });
    const waiting = acquireLock(store, "/l", { holder: "b", lease: lease(), waitMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await lockHolder(store, "/l")).toMatchObject({ holder: "a" });
    await first?.release();
    expect(await waiting).toMatchObject({ holder: "b" });
  });

  it("gives up at the deadline, naming the holder", async () => {
    const store = memoryStore();
    await tryAcquireLock(store, "/l", { holder: "web01", lease: lease() });
    const attempt = acquireLock(store, "/l", { holder: "b", lease: lease(), waitMs: 20 });
    await expect(attempt).rejects.toMatchObject({
      code: "ERR_OGYGIA_FLEET_LOCK_TIMEOUT",
      message: expect.stringContaining('"web01"') as unknown,
    });
  });

  it("gives up when the caller aborts", async () => {
    const store = memoryStore();
    await tryAcquireLock(store, "/l", { holder: "a", lease: lease() });
    const controller = new AbortController();
    const attempt = acquireLock(store, "/l", {
      holder: "b",
      lease: lease(),
      waitMs: 60_000,
      signal: controller.signal,
    });
    controller.abort();
    await expect(attempt).rejects.toMatchObject({ code: "ERR_OGYGIA_FLEET_LOCK_TIMEOUT" });
  });

  it("refuses a lease that is already lost", async () => {
    const store = memoryStore();
    const ended = lease();
    ended.end();
    await expect(tryAcquireLock(store, "/l", { holder: "a", lease: ended })).rejects.toThrow(
      /lost lease/,
    );
  });
});
