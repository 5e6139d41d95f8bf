/**
 * Coordination between hosts through the fleet's store, for the features
 * that act on several hosts at once (updates in waves, a dashboard):
 * compare-and-swap, leases with keys tied to them, watches from a revision,
 * and per-key locks. One interface, implemented over etcd
 * (`etcd-coordination.ts`) and ZooKeeper (`zookeeper-coordination.ts`),
 * which are imported only when opened.
 *
 * Contracts shared by both backends:
 * - A key is an absolute path (`/ogygia/locks/wave-1`): segments of any
 *   characters but `/` and NUL, not `.` or `..`. In etcd it is the key as
 *   written; in ZooKeeper the node path (missing parents are created as
 *   empty persistent nodes). Keys are not put under the fleet namespace: the
 *   caller picks them.
 * - A revision is a position in the store's single history (etcd: the store
 *   revision; ZooKeeper: the zxid). Every write gets a larger one. A key's
 *   `version` is the revision of its last write (etcd: `mod_revision`,
 *   ZooKeeper: `mzxid`), so a key deleted and created again never gets back
 *   a version it had before.
 * - Every network call has a deadline: `timeoutMs` when given, else the
 *   backend's `timeout_seconds`. Failures are `OgygiaError`s:
 *   `ERR_OGYGIA_FLEET_CONNECT` when the store cannot be reached in time (the
 *   call may or may not have taken effect: read again before retrying),
 *   `ERR_OGYGIA_FLEET_READ` / `_WRITE` when it refuses.
 */

import type { BackendConfig } from "./types.js";
import type { BackendKind } from "./backends.js";

/** A position in the store's history; see the module comment. */
export type Revision = bigint;

/** A key's value and the revision of its last write. */
export interface Entry {
  key: string;
  value: Uint8Array;
  version: Revision;
}

/** The answer of `get`. */
export interface Read {
  /** The key's entry, or null when it does not exist. */
  entry: Entry | null;
  /**
   * A revision at which the read held: `watch(key, { after: revision })`
   * delivers every later change. etcd: the store's revision when it
   * answered; ZooKeeper: the entry's version, or, for a missing key, the
   * revision of its parent's last child change (0 without a parent).
   */
  revision: Revision;
}

/** What `compareAndSet` expects to find: the key at this version, or no key. */
export type Expected = { version: Revision } | "absent";

/** `won`: the write happened, and `version` is the key's new version. */
export type CasResult = { won: true; version: Revision } | { won: false };

/** One change of `compareAndSetMany`: `value` put, or (null) the key deleted, if it is at `expected`. */
export interface KeyChange {
  key: string;
  expected: Expected;
  value: Uint8Array | null;
}

/**
 * `won`: every change happened, at once; `versions[i]` is the new version
 * of `changes[i]`'s key ("absent" for a delete).
 */
export type CasManyResult = { won: true; versions: (Revision | "absent")[] } | { won: false };

/** Per call: the deadline of each network request it makes. */
export interface CallOptions {
  /**
   * Milliseconds; default: the backend's `timeout_seconds`. On ZooKeeper a
   * longer one does not extend the shared session's own per-request
   * deadline (`timeout_seconds`); for `grantLease` it is the new session's.
   */
  timeoutMs?: number;
}

export interface SetOptions extends CallOptions {
  /**
   * Ties the key to this lease: it is deleted when the lease ends. Only for
   * a creation (`expected: "absent"`): later writes keep the key's lease
   * (ZooKeeper cannot move an ephemeral node to another session).
   */
  lease?: Lease;
}

export interface LeaseOptions extends CallOptions {
  /**
   * How long the lease outlives its holder's last renewal. etcd grants whole
   * seconds (rounded up, at least its minimum TTL); ZooKeeper rounds a
   * session timeout into the server's [minSessionTimeout,
   * maxSessionTimeout]. `Lease.ttlMs` is what was granted.
   */
  ttlMs: number;
}

/**
 * A lease (etcd) or session (ZooKeeper) that keys can be tied to. It is
 * renewed in the background every third of its TTL, each renewal with a
 * deadline, until revoked or lost.
 */
export interface Lease {
  /** etcd: the lease id; ZooKeeper: the session id, both in hex. */
  readonly id: string;
  /** The TTL the store granted, in milliseconds. */
  readonly ttlMs: number;
  /**
   * Aborted (reason: an `Error` saying why) once the lease is lost: the
   * store said it is gone, it was revoked, the coordinator closed, or no
   * renewal was confirmed for a whole TTL since it was sent; on ZooKeeper
   * also when the session is disconnected (the client cannot tell whether
   * it will expire). After that, assume its keys are gone or going; a lost
   * lease is never renewed again. It is reported no later than the store
   * drops the keys, unless the client itself is stalled (clocks run at the
   * same rate).
   */
  readonly lost: AbortSignal;
  /**
   * Ends the lease; its keys are gone from the store when this resolves.
   * Safe to call on a lost lease.
   */
  revoke(options?: CallOptions): Promise<void>;
}

/**
 * A change of a key. `put` carries the value and version after the write;
 * `delete` the revision at which the key was seen gone (etcd: the delete's
 * own; ZooKeeper: at least the delete's, see `Coordinator.watch`).
 */
export type WatchEvent =
  | { type: "put"; key: string; value: Uint8Array; version: Revision }
  | { type: "delete"; key: string; revision: Revision };

export interface WatchOptions {
  /** Deliver the changes made after this revision (from `get` or a write). */
  after: Revision;
  /** Ends the watch: the iteration finishes without an error. */
  signal: AbortSignal;
}

/** Who holds a lock. */
export interface LockHolder {
  holder: string;
  /** The lock key's version: changes with every acquisition. */
  version: Revision;
}

/** A held lock. It ends with its lease. */
export interface Lock extends LockHolder {
  readonly key: string;
  readonly lease: Lease;
  /**
   * Releases the lock: false when it was no longer held (its lease ended,
   * or the key was deleted or taken by someone else).
   */
  release(options?: CallOptions): Promise<boolean>;
}

export interface LockOptions extends CallOptions {
  /** Who asks, as other hosts will see it (a host name, a process). */
  holder: string;
  /** The lock lasts at most as long as this lease. */
  lease: Lease;
}

export interface AcquireOptions extends LockOptions {
  /** Gives up with `ERR_OGYGIA_FLEET_LOCK_TIMEOUT` after this many milliseconds. */
  waitMs: number;
  /** Gives up (same error) when aborted. */
  signal?: AbortSignal;
}

/**
 * Compare-and-swap, leases, watches and locks over one backend. Methods may
 * run concurrently. Nothing is retried inside: a caller that retries after
 * `ERR_OGYGIA_FLEET_CONNECT` reads first, since the write may have happened.
 */
export interface Coordinator {
  readonly kind: BackendKind;
  readonly config: BackendConfig;

  /** Reads a key. */
  get(key: string, options?: CallOptions): Promise<Read>;

  /**
   * Writes `value` if the key is as `expected` (etcd: one transaction on
   * `mod_revision` or `create_revision = 0`; ZooKeeper: `create`, or
   * `setData` at the data version of the node whose `mzxid` was expected).
   * Of concurrent calls expecting the same state, at most one wins.
   */
  compareAndSet(
    key: string,
    expected: Expected,
    value: Uint8Array,
    options?: SetOptions,
  ): Promise<CasResult>;

  /**
   * Several keys' compare-and-swap as one atomic write: every key is
   * checked against its `expected` and, if all match, every change is made
   * together (readers and watchers see them in one revision); else nothing
   * is written. etcd: one transaction; ZooKeeper: one `multi` (the keys'
   * stats are read first; a delete of a key expected absent is not checked).
   * Keys must be distinct; no lease.
   */
  compareAndSetMany(changes: readonly KeyChange[], options?: CallOptions): Promise<CasManyResult>;

  /** Deletes the key if it is at `expected.version`; false when it was not (or is gone). */
  compareAndDelete(
    key: string,
    expected: { version: Revision },
    options?: CallOptions,
  ): Promise<boolean>;

  /** Grants a lease, renewed in the background until revoked, lost or the coordinator closes. */
  grantLease(options: LeaseOptions): Promise<Lease>;

  /**
   * The changes of one key after `options.after`, in revision order,
   * strictly increasing, until `signal` aborts. etcd delivers every change
   * (an `ERR_OGYGIA_FLEET_READ` error ends it when `after` was compacted
   * away). ZooKeeper keeps no history: the watch re-reads the key whenever
   * a one-shot watcher fires, so changes close together arrive as the
   * latest of them, a delete followed by a create may show as a put only,
   * and a delete is also reported for a key already missing at `after`
   * when its parent changed since. Both end with
   * `ERR_OGYGIA_FLEET_CONNECT` when the store is lost; watch again from
   * the last revision received. A consumer slower than the store fills a
   * bounded buffer and the watch ends with an error.
   */
  watch(key: string, options: WatchOptions): AsyncIterable<WatchEvent>;

  /** Takes the lock if it is free (a key created with the lease), else null. */
  tryAcquireLock(key: string, options: LockOptions): Promise<Lock | null>;

  /**
   * Takes the lock, waiting (a watch, no polling) until it is released or
   * its holder's lease ends, at most `waitMs`.
   */
  acquireLock(key: string, options: AcquireOptions): Promise<Lock>;

  /** Who holds the lock now, or null when it is free. */
  lockHolder(key: string, options?: CallOptions): Promise<LockHolder | null>;

  /**
   * Ends watches, marks every lease lost without waiting for the store and
   * closes connections. Leases' keys then go after their TTL (etcd stops
   * renewing) or as soon as the server hears of the closed session
   * (ZooKeeper); `revoke` first to have them gone on return. Safe to call
   * more than once.
   */
  close(): Promise<void>;
}

/** Throws a programmer error unless `key` is a valid coordination key (see the module comment). */
export function checkKey(key: string): void {
  const segments = key.split("/");
  const valid =
    key.startsWith("/") &&
    segments.length >= 2 &&
    segments.slice(1).every((s) => s !== "" && s !== "." && s !== ".." && !s.includes("\0"));
  if (!valid) throw new Error(`not a coordination key: ${JSON.stringify(key)}`);
}

/** The parent of a valid key: `/a/b` → `/a`, `/a` → `/`. */
export function parentKey(key: string): string {
  const slash = key.lastIndexOf("/");
  return slash <= 0 ? "/" : key.slice(0, slash);
}
