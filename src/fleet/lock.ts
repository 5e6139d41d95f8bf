/**
 * Per-key locks over any `Coordinator`'s primitives: the lock is a key
 * created only when absent (compare-and-swap), tied to the holder's lease,
 * holding the holder's identity. It is released by deleting it at the
 * version that created it, and ends on its own when the lease does.
 */

import { OgygiaError } from "../core/index.js";
import type {
  AcquireOptions,
  CallOptions,
  Coordinator,
  Lock,
  LockHolder,
  LockOptions,
  Revision,
} from "./coordination.js";

/** What the lock functions use of a coordinator. */
export type LockPrimitives = Pick<
  Coordinator,
  "get" | "compareAndSet" | "compareAndDelete" | "watch"
>;

const decoder = new TextDecoder("utf-8", { fatal: false });

/** The lock of `key` at `version`, as returned to its holder. */
function heldLock(
  primitives: LockPrimitives,
  key: string,
  options: LockOptions,
  version: Revision,
): Lock {
  return {
    key,
    holder: options.holder,
    version,
    lease: options.lease,
    release: (callOptions?: CallOptions) =>
      primitives.compareAndDelete(key, { version }, callOptions),
  };
}

/** Creates the lock key if it does not exist; null when someone holds it. */
export async function tryAcquireLock(
  primitives: LockPrimitives,
  key: string,
  options: LockOptions,
): Promise<Lock | null> {
  if (options.lease.lost.aborted) {
    throw new Error(`cannot take ${key} with a lost lease`);
  }
  const result = await primitives.compareAndSet(
    key,
    "absent",
    new TextEncoder().encode(options.holder),
    { lease: options.lease, ...callOptions(options) },
  );
  return result.won ? heldLock(primitives, key, options, result.version) : null;
}

/** Who holds the lock of `key`, or null. */
export async function lockHolder(
  primitives: LockPrimitives,
  key: string,
  options?: CallOptions,
): Promise<LockHolder | null> {
  const { entry } = await primitives.get(key, options);
  return entry ? { holder: decoder.decode(entry.value), version: entry.version } : null;
}

/**
 * Takes the lock, waiting for the key to be deleted between attempts. Each
 * round either takes the lock, or sees a holder and waits on a watch until
 * that holder's key is gone; the wait is cut at the deadline, so the loop
 * ends by `waitMs` (plus the deadlines of the calls in flight) at the latest.
 */
export async function acquireLock(
  primitives: LockPrimitives,
  key: string,
  options: AcquireOptions,
): Promise<Lock> {
  const deadline = AbortSignal.timeout(options.waitMs);
  const stop = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let holder: string | undefined;
  while (!stop.aborted) {
    const lock = await tryAcquireLock(primitives, key, options);
    if (lock) return lock;
    const read = await primitives.get(key, callOptions(options));
    if (read.entry === null) continue;
    holder = decoder.decode(read.entry.value);
    await waitForDelete(primitives, key, read.revision, stop);
  }
  throw new OgygiaError(
    "ERR_OGYGIA_FLEET_LOCK_TIMEOUT",
    `could not take the lock ${key} within ${options.waitMs} ms` +
      (holder === undefined ? "." : `: held by ${JSON.stringify(holder)}.`),
    { hint: "Wait for the holder to finish, or for its lease to expire, and try again." },
  );
}

/** Returns when `key` is deleted after `after`, or when `stop` aborts. */
async function waitForDelete(
  primitives: LockPrimitives,
  key: string,
  after: Revision,
  stop: AbortSignal,
): Promise<void> {
  const done = new AbortController();
  const signal = AbortSignal.any([stop, done.signal]);
  for await (const event of primitives.watch(key, { after, signal })) {
    if (event.type === "delete") {
      done.abort();
      return;
    }
  }
}

function callOptions(options: CallOptions): CallOptions {
  return options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
}
