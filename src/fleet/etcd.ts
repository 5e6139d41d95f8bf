/**
 * The etcd adapter: the only module that uses the etcd client
 * (`etcd-client/`). Reads the whole namespace with one range request over
 * its prefix; publishes a host's keys in one transaction, with `alive`
 * attached to a lease that the publisher keeps alive.
 */

import type { BackendConfig } from "./types.js";
import { OgygiaError, delay } from "../core/index.js";
import {
  CompareResult,
  CompareTarget,
  EtcdClient,
  GrpcCode,
  GrpcError,
  prefixRangeEnd,
  type EtcdClientOptions,
  type EtcdWatcher,
} from "./etcd-client/index.js";
import {
  anotherPublisher,
  credentialFailure,
  permissionFailure,
  readAuth,
  readTls,
} from "./credentials.js";
import { DeadlineError, connectError, readError, withDeadline, writeError } from "./errors.js";
import {
  SnapshotBuilder,
  TableBuilder,
  fieldKey,
  namespacePrefix,
  rolloutPrefix,
  snapshotFromPairs,
} from "./keys.js";
import type {
  FleetBackend,
  FleetPublisher,
  FleetSnapshot,
  FleetTable,
  FleetWatch,
  FleetWatchHandlers,
  HostChanges,
  HostValues,
  PublisherOptions,
} from "./types.js";
import { LiveSnapshot } from "./live-snapshot.js";
import { SnapshotRefresher } from "./watch.js";

/** How long a watch that etcd cancelled (compaction, ...) waits before it is made again. */
const REWATCH_DELAY_MS = 1000;
/** Changes that arrive together (one transaction, a burst) make one snapshot. */
const FLUSH_MS = 20;

/** etcd could not be reached (or did not answer) in time. */
function isConnectionFailure(err: unknown): boolean {
  return (
    err instanceof DeadlineError ||
    (err instanceof GrpcError &&
      (err.code === GrpcCode.UNAVAILABLE || err.code === GrpcCode.DEADLINE_EXCEEDED))
  );
}

/** etcd's answer for a lease it does not know (expired or revoked). */
function isLeaseNotFound(err: unknown): boolean {
  return (
    err instanceof GrpcError &&
    err.code === GrpcCode.NOT_FOUND &&
    err.details.includes("requested lease not found")
  );
}

/** Resolves to false instead of rejecting when etcd no longer knows the lease. */
async function unlessLeaseInvalid(promise: Promise<unknown>): Promise<boolean> {
  try {
    await promise;
    return true;
  } catch (err) {
    if (isLeaseNotFound(err)) return false;
    throw err;
  }
}

/** A lease id as etcd gives it (int64) in the decimal form the interfaces use. */
function leaseBigInt(id: string): bigint {
  return BigInt(id);
}

/**
 * Client options beyond the configuration: TLS material and a user for
 * etcd's authentication, over what the configuration's credential files say.
 */
export type EtcdConnectionOptions = Pick<EtcdClientOptions, "tls" | "auth">;

/** A client for `config`, its credential files read now (errors name the file). */
function createClient(config: BackendConfig, extra?: EtcdConnectionOptions): EtcdClient {
  return new EtcdClient({
    endpoints: config.endpoints,
    timeoutMs: config.timeoutSeconds * 1000,
    tls: readTls(config),
    auth: readAuth("etcd", config),
    ...extra,
  });
}

/**
 * Maps a failed call to the fleet's `OgygiaError`: a refused identity or
 * write first (they say what to fix), then unreachable, then `fallback`.
 */
function mapEtcdError(
  config: BackendConfig,
  err: unknown,
  fallback: (cause: unknown) => OgygiaError,
  what = "write there",
): OgygiaError {
  if (err instanceof OgygiaError) return err;
  const refused =
    credentialFailure("etcd", config, err) ?? permissionFailure("etcd", config, err, what);
  if (refused) return refused;
  if (isConnectionFailure(err)) return connectError("etcd", config, err);
  return fallback(err);
}

/** One operation of a transaction, as the generated `RequestOp` takes it. */
type TxnOp = NonNullable<TxnRequestInit["success"]>[number];
type TxnCompare = NonNullable<TxnRequestInit["compare"]>[number];
type TxnRequestInit = Parameters<EtcdClient["txn"]>[0];

const encoder = new TextEncoder();

/** The bytes of a key. */
function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

class EtcdBackend implements FleetBackend {
  readonly kind = "etcd" as const;
  readonly config: BackendConfig;
  private readonly client: EtcdClient;
  private closed = false;

  constructor(config: BackendConfig, extra?: EtcdConnectionOptions) {
    this.config = config;
    this.client = createClient(config, extra);
  }

  async readHosts(): Promise<FleetSnapshot> {
    return (await this.readRange()).snapshot;
  }

  async readTable(): Promise<FleetTable> {
    const prefix = namespacePrefix(this.config.namespace);
    const key = bytes(prefix);
    try {
      const builder = new TableBuilder(prefix);
      await withDeadline(
        this.client.rangeVisit({ key, rangeEnd: prefixRangeEnd(key) }, builder.add),
        this.config.timeoutSeconds * 1000,
      );
      return builder.table();
    } catch (err) {
      throw mapEtcdError(
        this.config,
        err,
        (cause) => readError("etcd", this.config, cause),
        `read ${prefix}`,
      );
    }
  }

  /** The namespace, and the store revision the read saw. */
  private async readRange(): Promise<{ snapshot: FleetSnapshot; revision: bigint }> {
    const prefix = namespacePrefix(this.config.namespace);
    const key = bytes(prefix);
    try {
      // Keys and values go straight from the response's bytes into the
      // snapshot: no object per key (60,000 of them at 10,000 hosts).
      const builder = new SnapshotBuilder(prefix);
      const { revision } = await withDeadline(
        this.client.rangeVisit({ key, rangeEnd: prefixRangeEnd(key) }, builder.add),
        this.config.timeoutSeconds * 1000,
      );
      return { snapshot: builder.snapshot(), revision };
    } catch (err) {
      throw mapEtcdError(
        this.config,
        err,
        (cause) => readError("etcd", this.config, cause),
        `read ${prefix}`,
      );
    }
  }

  /**
   * Reads the namespace once, then follows one etcd watch from the revision
   * of that read, applying each changed key to the snapshot: a change costs
   * its own keys, not a read of the whole fleet. A lost watch (etcd down,
   * the stream broken) or one etcd cancelled (a compacted revision) starts
   * over with a full read, which also reports the outage while it lasts.
   */
  watchHosts(handlers: FleetWatchHandlers): FleetWatch {
    const prefix = namespacePrefix(this.config.namespace);
    const key = bytes(prefix);
    const live = new LiveSnapshot(prefix);
    const stop = new AbortController();
    let watcher: EtcdWatcher | undefined;
    // Events of a watcher from before the last full read are dropped.
    let generation = 0;
    let flushTimer: NodeJS.Timeout | undefined;

    const stopFollowing = (): void => {
      generation += 1;
      watcher?.cancel();
      watcher = undefined;
      clearTimeout(flushTimer);
      flushTimer = undefined;
    };
    const flush = (): void => {
      flushTimer = undefined;
      if (!stop.signal.aborted) handlers.onSnapshot(live.snapshot());
    };
    const follow = (fromRevision: bigint): void => {
      if (stop.signal.aborted) return;
      const mine = generation;
      watcher = this.client.watch(
        { key, rangeEnd: prefixRangeEnd(key), startRevision: fromRevision },
        {
          onEvents: (events) => {
            if (mine !== generation) return;
            let changed = false;
            for (const event of events) {
              if (live.apply(event.key.toString(), event.deleted ? null : event.value)) {
                changed = true;
              }
            }
            if (changed && flushTimer === undefined) flushTimer = setTimeout(flush, FLUSH_MS);
          },
          onDisconnected: () => {
            if (mine !== generation) return;
            stopFollowing();
            refresher.trigger();
          },
          onCanceled: () => {
            if (mine !== generation) return;
            stopFollowing();
            void delay(REWATCH_DELAY_MS, stop.signal).then(() => {
              refresher.trigger();
            });
          },
        },
      );
    };
    const refresher = new SnapshotRefresher(async () => {
      stopFollowing();
      const { snapshot, revision } = await this.readRange();
      live.reset(snapshot);
      follow(revision + 1n);
      return snapshot;
    }, handlers);
    refresher.trigger();
    return {
      close: () => {
        stop.abort();
        refresher.close();
        stopFollowing();
        return Promise.resolve();
      },
    };
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.client.close();
    }
    return Promise.resolve();
  }
}

/** Creates an etcd backend; connection happens on the first request. */
export function openEtcd(config: BackendConfig, extra?: EtcdConnectionOptions): FleetBackend {
  return new EtcdBackend(config, extra);
}

/**
 * Publishes one host. `alive` is put with a lease of `leaseTtlSeconds`; the
 * publisher renews it with `refreshAlive` (one keepalive request each time,
 * so that the caller's loop sets the pace and nothing runs in the
 * background). A lease etcd no longer knows makes `refreshAlive` false.
 */
class EtcdPublisher implements FleetPublisher {
  readonly kind = "etcd" as const;
  readonly config: BackendConfig;
  readonly host: string;
  private readonly ttlSeconds: number;
  private readonly timeoutMs: number;
  private readonly client: EtcdClient;
  private leaseId: bigint | undefined;
  /** Every lease this publisher was granted: \`alive\` under one of them is its own. */
  private readonly ownLeases = new Set<bigint>();
  private closed = false;

  constructor(config: BackendConfig, options: PublisherOptions, extra?: EtcdConnectionOptions) {
    this.config = config;
    this.host = options.host;
    this.ttlSeconds = options.leaseTtlSeconds;
    this.timeoutMs = config.timeoutSeconds * 1000;
    this.client = createClient(config, extra);
  }

  private key(field: Parameters<typeof fieldKey>[2]): Uint8Array {
    return bytes(fieldKey(this.config.namespace, this.host, field));
  }

  /** Runs `fn` under the deadline, mapping failures to `OgygiaError`. */
  private call<T>(fn: () => Promise<T>, what: "read" | "write"): Promise<T> {
    return etcdCall(this.config, fn, this.timeoutMs, what, `${what} ${this.hostPrefix}`);
  }

  private get hostPrefix(): string {
    return `${namespacePrefix(this.config.namespace)}${this.host}/`;
  }

  async readHost(): Promise<HostValues> {
    const hostPrefix = `${namespacePrefix(this.config.namespace)}${this.host}/`;
    const key = bytes(hostPrefix);
    const response = await this.call(
      () => this.client.range({ key, rangeEnd: prefixRangeEnd(key) }),
      "read",
    );
    const snapshot = snapshotFromPairs(namespacePrefix(this.config.namespace), response.kvs);
    return snapshot.hosts.get(this.host) ?? new Map();
  }

  async write(changes: HostChanges): Promise<void> {
    const ops: TxnOp[] = [];
    for (const [field, value] of changes.put) {
      ops.push({
        request: { case: "requestPut", value: { key: this.key(field), value: bytes(value) } },
      });
    }
    for (const field of changes.delete) {
      ops.push({ request: { case: "requestDeleteRange", value: { key: this.key(field) } } });
    }
    if (ops.length === 0) return;
    await this.call(() => this.checkOwner(), "write");
    // One transaction: readers never see half of a publication.
    await this.call(() => this.client.txn({ success: ops }), "write");
  }

  async ensureAlive(value: string): Promise<void> {
    // A lease that expired between grant and put (or was revoked) is granted
    // anew, once; a second failure is reported like any other.
    for (let attempt = 0; attempt < 2; attempt++) {
      this.leaseId ??= (await this.call(() => this.client.leaseGrant(this.ttlSeconds), "write")).ID;
      const lease = this.leaseId;
      const claimed = this.call(() => unlessLeaseInvalid(this.claimAlive(value, lease)), "write");
      if (await claimed) {
        this.ownLeases.add(lease);
        return;
      }
      this.leaseId = undefined;
    }
    throw writeError("etcd", this.config, new Error("every lease granted was gone at once"));
  }

  /**
   * Refuses to write while another publisher's lease holds \`alive\` (issue
   * 13, row 7): the daemon then stands by and retries.
   */
  private async checkOwner(): Promise<void> {
    const holder = (await this.client.range({ key: this.key("alive") })).kvs[0];
    if (holder === undefined || holder.lease === 0n || this.ownLeases.has(holder.lease)) return;
    if (holder.lease === this.leaseId) return;
    throw anotherPublisher(
      this.config,
      this.host,
      `lease ${holder.lease.toString(16)}`,
      Buffer.from(holder.value).toString("utf8"),
    );
  }

  /**
   * Puts \`alive\` under \`lease\` unless another publisher's lease holds it
   * (issue 13, row 7: two publishers with one host name). The lease is the
   * owner's identity: \`alive\` is put if it is absent, or held by this
   * publisher's lease, or by one of its earlier leases (a lease lost while
   * the key lingered); otherwise this refuses, and the daemon stands by.
   */
  private async claimAlive(value: string, lease: bigint): Promise<void> {
    const key = this.key("alive");
    const put = {
      request: { case: "requestPut" as const, value: { key, value: bytes(value), lease } },
    };
    const response = await this.client.txn({
      compare: [
        {
          key,
          target: CompareTarget.Create,
          result: CompareResult.Equal,
          targetUnion: { case: "createRevision", value: 0n },
        },
      ],
      success: [put],
      failure: [{ request: { case: "requestRange", value: { key } } }],
    });
    if (response.succeeded) return;
    const range = response.responses[0]?.response;
    const holder = range?.case === "responseRange" ? range.value.kvs[0] : undefined;
    if (holder === undefined || holder.lease === lease || this.ownLeases.has(holder.lease)) {
      const refreshed = await this.client.txn({
        compare: [
          {
            key,
            target: CompareTarget.Lease,
            result: CompareResult.Equal,
            targetUnion: { case: "lease", value: holder?.lease ?? 0n },
          },
        ],
        success: [put],
      });
      if (!refreshed.succeeded) throw new Error("alive changed hands while being claimed");
      return;
    }
    throw anotherPublisher(
      this.config,
      this.host,
      `lease ${holder.lease.toString(16)}`,
      Buffer.from(holder.value).toString("utf8"),
    );
  }

  async refreshAlive(): Promise<boolean> {
    const lease = this.leaseId;
    if (lease === undefined) return false;
    const ttl = await this.call(() => this.client.leaseKeepAliveOnce(lease), "write");
    if (ttl > 0) return true;
    if (this.leaseId === lease) this.leaseId = undefined;
    return false;
  }

  onLivenessLost(): void {
    // etcd reports a lost lease through refreshAlive.
  }

  async close(options: { revoke: boolean }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const lease = this.leaseId;
    this.leaseId = undefined;
    try {
      if (options.revoke && lease !== undefined) {
        // A lease that is already gone is what revoking wants.
        await this.call(() => unlessLeaseInvalid(this.client.leaseRevoke(lease)), "write");
      }
    } finally {
      this.client.close();
    }
  }
}

/** Creates an etcd publisher for one host; it connects on its first call. */
export function openEtcdPublisher(
  config: BackendConfig,
  options: PublisherOptions,
  extra?: EtcdConnectionOptions,
): FleetPublisher {
  return new EtcdPublisher(config, options, extra);
}

/** A key as coordination sees it: its value and the revision of its last write. */
export interface EtcdEntry {
  value: Buffer;
  modRevision: bigint;
}

/** One change of a watched key, in etcd's order. */
export type EtcdChange =
  { type: "put"; value: Buffer; modRevision: bigint } | { type: "delete"; modRevision: bigint };

/**
 * The etcd calls that coordination (`etcd-coordination.ts`) makes, in plain
 * types, so that the etcd client stays behind this file. Every call takes its deadline
 * and throws `OgygiaError` (`connectError` when etcd cannot be reached in
 * time, else `readError` or `writeError`).
 */
export interface EtcdCoordinationClient {
  /** The key (or null) and the store revision the read saw. */
  get(key: string, timeoutMs: number): Promise<{ entry: EtcdEntry | null; revision: bigint }>;
  /**
   * One transaction: puts `value` if the key's mod revision is `expected`
   * (keeping its lease) or, for "absent", if the key does not exist (with
   * `lease` when given). The new mod revision, or null when the compare failed.
   */
  putIf(
    key: string,
    expected: bigint | "absent",
    value: Uint8Array,
    options: { lease?: string | undefined; timeoutMs: number },
  ): Promise<bigint | null>;
  /** One transaction: deletes the key if its mod revision is `expected`. */
  deleteIf(key: string, expected: bigint, timeoutMs: number): Promise<boolean>;
  /**
   * One transaction over several keys: each compared as in `putIf`, then
   * each put (`value`, keeping its lease) or deleted (null). The
   * transaction's revision, or null when a compare failed.
   */
  changeIf(
    changes: readonly { key: string; expected: bigint | "absent"; value: Uint8Array | null }[],
    timeoutMs: number,
  ): Promise<bigint | null>;
  /** Grants a lease; its id (decimal, as etcd writes it) and the TTL granted. */
  grantLease(ttlSeconds: number, timeoutMs: number): Promise<{ id: string; ttlSeconds: number }>;
  /** One keepalive: the remaining TTL, 0 when etcd no longer knows the lease. */
  keepAlive(id: string, timeoutMs: number): Promise<number>;
  /** Revokes a lease (and deletes its keys); a lease already gone is no error. */
  revokeLease(id: string, timeoutMs: number): Promise<void>;
  /**
   * Watches one key from `startRevision` (inclusive). The client reconnects
   * and resumes by itself; `onError` reports a watch etcd cancelled (a
   * compacted revision, ...), after which nothing more is delivered. The
   * returned function cancels the watch (bounded by `timeout_seconds`).
   */
  watch(
    key: string,
    startRevision: bigint,
    handlers: { onChanges(changes: EtcdChange[]): void; onError(error: OgygiaError): void },
  ): () => Promise<void>;
  close(): void;
}

/** Runs `fn` under a deadline, mapping its failures to the fleet's `OgygiaError`s. */
async function etcdCall<T>(
  config: BackendConfig,
  fn: () => Promise<T>,
  timeoutMs: number,
  what: "read" | "write",
  target?: string,
): Promise<T> {
  try {
    return await withDeadline(fn(), timeoutMs);
  } catch (err) {
    throw mapEtcdError(
      config,
      err,
      (cause) =>
        what === "read" ? readError("etcd", config, cause) : writeError("etcd", config, cause),
      target ?? (what === "read" ? "read there" : "write there"),
    );
  }
}

class EtcdCoordinationClientImpl implements EtcdCoordinationClient {
  private readonly client: EtcdClient;

  constructor(
    private readonly config: BackendConfig,
    extra?: EtcdConnectionOptions,
  ) {
    this.client = createClient(config, extra);
  }

  private call<T>(fn: () => Promise<T>, timeoutMs: number, what: "read" | "write"): Promise<T> {
    return etcdCall(this.config, fn, timeoutMs, what);
  }

  async get(
    key: string,
    timeoutMs: number,
  ): Promise<{ entry: EtcdEntry | null; revision: bigint }> {
    const response = await this.call(
      () => this.client.range({ key: bytes(key) }, { timeoutMs }),
      timeoutMs,
      "read",
    );
    const kv = response.kvs[0];
    return {
      entry: kv ? { value: Buffer.from(kv.value), modRevision: kv.modRevision } : null,
      revision: response.revision,
    };
  }

  async putIf(
    key: string,
    expected: bigint | "absent",
    value: Uint8Array,
    options: { lease?: string | undefined; timeoutMs: number },
  ): Promise<bigint | null> {
    const keyBytes = bytes(key);
    const compare: TxnCompare =
      expected === "absent"
        ? {
            key: keyBytes,
            target: CompareTarget.Create,
            result: CompareResult.Equal,
            targetUnion: { case: "createRevision", value: 0n },
          }
        : {
            key: keyBytes,
            target: CompareTarget.Mod,
            result: CompareResult.Equal,
            targetUnion: { case: "modRevision", value: expected },
          };
    const put =
      expected === "absent"
        ? {
            key: keyBytes,
            value,
            ...(options.lease && { lease: leaseBigInt(options.lease) }),
          }
        : { key: keyBytes, value, ignoreLease: true };
    const response = await this.call(
      () =>
        this.client.txn(
          { compare: [compare], success: [{ request: { case: "requestPut", value: put } }] },
          { timeoutMs: options.timeoutMs },
        ),
      options.timeoutMs,
      "write",
    );
    // A transaction that writes gets the revision in its header.
    return response.succeeded ? (response.header?.revision ?? 0n) : null;
  }

  async deleteIf(key: string, expected: bigint, timeoutMs: number): Promise<boolean> {
    const keyBytes = bytes(key);
    const response = await this.call(
      () =>
        this.client.txn(
          {
            compare: [
              {
                key: keyBytes,
                target: CompareTarget.Mod,
                result: CompareResult.Equal,
                targetUnion: { case: "modRevision", value: expected },
              },
            ],
            success: [{ request: { case: "requestDeleteRange", value: { key: keyBytes } } }],
          },
          { timeoutMs },
        ),
      timeoutMs,
      "write",
    );
    return response.succeeded;
  }

  async changeIf(
    changes: readonly { key: string; expected: bigint | "absent"; value: Uint8Array | null }[],
    timeoutMs: number,
  ): Promise<bigint | null> {
    const compare: TxnCompare[] = [];
    const success: TxnOp[] = [];
    for (const change of changes) {
      const key = bytes(change.key);
      compare.push(
        change.expected === "absent"
          ? {
              key,
              target: CompareTarget.Create,
              result: CompareResult.Equal,
              targetUnion: { case: "createRevision", value: 0n },
            }
          : {
              key,
              target: CompareTarget.Mod,
              result: CompareResult.Equal,
              targetUnion: { case: "modRevision", value: change.expected },
            },
      );
      if (change.value !== null) {
        success.push({
          request: {
            case: "requestPut",
            value:
              change.expected === "absent"
                ? { key, value: change.value }
                : { key, value: change.value, ignoreLease: true },
          },
        });
      } else if (change.expected !== "absent") {
        success.push({ request: { case: "requestDeleteRange", value: { key } } });
      }
    }
    const response = await this.call(
      () => this.client.txn({ compare, success }, { timeoutMs }),
      timeoutMs,
      "write",
    );
    return response.succeeded ? (response.header?.revision ?? 0n) : null;
  }

  async grantLease(
    ttlSeconds: number,
    timeoutMs: number,
  ): Promise<{ id: string; ttlSeconds: number }> {
    const response = await this.call(
      () => this.client.leaseGrant(ttlSeconds, { timeoutMs }),
      timeoutMs,
      "write",
    );
    return { id: response.ID.toString(), ttlSeconds: Number(response.TTL) };
  }

  async keepAlive(id: string, timeoutMs: number): Promise<number> {
    const ttl = await this.call(
      () => this.client.leaseKeepAliveOnce(leaseBigInt(id), { timeoutMs }),
      timeoutMs,
      "write",
    );
    return Number(ttl);
  }

  async revokeLease(id: string, timeoutMs: number): Promise<void> {
    await this.call(
      () => unlessLeaseInvalid(this.client.leaseRevoke(leaseBigInt(id), { timeoutMs })),
      timeoutMs,
      "write",
    );
  }

  watch(
    key: string,
    startRevision: bigint,
    handlers: { onChanges(changes: EtcdChange[]): void; onError(error: OgygiaError): void },
  ): () => Promise<void> {
    const watcher = this.client.watch(
      { key: bytes(key), startRevision },
      {
        onEvents: (events) => {
          handlers.onChanges(
            events.map(({ deleted, value, modRevision }): EtcdChange =>
              deleted
                ? { type: "delete", modRevision }
                : { type: "put", value: Buffer.from(value), modRevision },
            ),
          );
        },
        onCanceled: (err) => {
          handlers.onError(readError("etcd", this.config, err));
        },
      },
    );
    return () => {
      watcher.cancel();
      return Promise.resolve();
    };
  }

  close(): void {
    this.client.close();
  }
}

/** Opens the etcd client that coordination uses; it connects on its first call. */
export function openEtcdCoordinationClient(
  config: BackendConfig,
  extra?: EtcdConnectionOptions,
): EtcdCoordinationClient {
  return new EtcdCoordinationClientImpl(config, extra);
}

// ---------------------------------------------------------------- per-host grants

/** The role that `ogygia fleet grant` gives `host`'s user. */
export function etcdHostRole(host: string): string {
  return `ogygia-host-${host}`;
}

/** etcd's answer when what is being added exists already. */
function isAlreadyExists(err: unknown): boolean {
  return err instanceof GrpcError && err.details.includes("already exists");
}

/** etcd's answer when what is being removed or read does not exist. */
function isNotFound(err: unknown): boolean {
  return err instanceof GrpcError && err.details.includes("not found");
}

/** Runs an administration call, mapping its failure to the fleet's errors. */
function adminCall<T>(config: BackendConfig, fn: () => Promise<T>, what: string): Promise<T> {
  return etcdCall(config, fn, config.timeoutSeconds * 1000, "write", what);
}

/**
 * What a granted host's role may do beside its own keys: read the rollout's
 * keys (the plan), and write its slot locks and failed-path records
 * (docs/updates.md, "Keys"). etcd's permissions are by key range, so a
 * host may write any slot or failed record there, not only its own.
 */
function rolloutPermissions(namespace: string): { type: "read" | "readwrite"; key: Uint8Array }[] {
  const prefix = `${rolloutPrefix(namespace)}/`;
  return [
    { type: "read", key: bytes(prefix) },
    { type: "readwrite", key: bytes(`${prefix}slots/`) },
    { type: "readwrite", key: bytes(`${prefix}failed/`) },
  ];
}

/**
 * Creates (or updates) `host`'s user with `password` and its role: read on
 * the whole namespace, read and write on `<namespace>/<host>/` only, and
 * what the update agent needs of the rollout's keys (`rolloutPermissions`).
 * Runs with the configuration's (admin) credentials. Granting again adds
 * what a role made by an older version lacks.
 */
export async function etcdGrantHost(
  config: BackendConfig,
  host: string,
  password: string,
): Promise<void> {
  const client = createClient(config);
  const role = etcdHostRole(host);
  const namespace = bytes(namespacePrefix(config.namespace));
  const own = bytes(`${namespacePrefix(config.namespace)}${host}/`);
  const what = "administer users and roles (run it with the admin's credentials)";
  try {
    await adminCall(
      config,
      async () => {
        try {
          await client.roleAdd(role);
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
        }
        await client.roleGrantPermission(role, {
          type: "read",
          key: namespace,
          rangeEnd: prefixRangeEnd(namespace),
        });
        await client.roleGrantPermission(role, {
          type: "readwrite",
          key: own,
          rangeEnd: prefixRangeEnd(own),
        });
        for (const { type, key } of rolloutPermissions(config.namespace)) {
          await client.roleGrantPermission(role, { type, key, rangeEnd: prefixRangeEnd(key) });
        }
        try {
          await client.userAdd(host, password);
        } catch (err) {
          if (!isAlreadyExists(err)) throw err;
          await client.userChangePassword(host, password);
        }
        await client.userGrantRole(host, role);
      },
      what,
    );
  } finally {
    client.close();
  }
}

/**
 * Deletes the rollout slot locks `host` holds (each only if unchanged
 * since read), so that a revoked host's agent frees its slot at once.
 */
async function releaseSlotsOf(client: EtcdClient, namespace: string, host: string): Promise<void> {
  const slots = bytes(`${rolloutPrefix(namespace)}/slots/`);
  const { kvs } = await client.range({ key: slots, rangeEnd: prefixRangeEnd(slots) });
  for (const kv of kvs) {
    if (Buffer.from(kv.value).toString("utf8") !== host) continue;
    const key = Uint8Array.from(kv.key);
    await client.txn({
      compare: [
        {
          key,
          target: CompareTarget.Mod,
          result: CompareResult.Equal,
          targetUnion: { case: "modRevision", value: kv.modRevision },
        },
      ],
      success: [{ request: { case: "requestDeleteRange", value: { key } } }],
    });
  }
}

/**
 * Removes `host`'s user and role (with it, every permission `grant` gave),
 * and the rollout slot locks it holds; false when there was no user or role.
 */
export async function etcdRevokeHost(config: BackendConfig, host: string): Promise<boolean> {
  const client = createClient(config);
  const what = "administer users and roles (run it with the admin's credentials)";
  try {
    return await adminCall(
      config,
      async () => {
        let removed = false;
        for (const remove of [
          () => client.userDelete(host),
          () => client.roleDelete(etcdHostRole(host)),
        ]) {
          try {
            await remove();
            removed = true;
          } catch (err) {
            if (!isNotFound(err)) throw err;
          }
        }
        // After the user is gone, so that it cannot take a slot again.
        await releaseSlotsOf(client, config.namespace, host);
        return removed;
      },
      what,
    );
  } finally {
    client.close();
  }
}

/** The hosts granted by `ogygia fleet grant`: users holding their own host role. */
export async function etcdGrantedHosts(config: BackendConfig): Promise<string[]> {
  const client = createClient(config);
  try {
    return await adminCall(
      config,
      async () => {
        const granted: string[] = [];
        for (const user of await client.userList()) {
          const roles = await client.userGet(user);
          if (roles.includes(etcdHostRole(user))) granted.push(user);
        }
        return granted.sort();
      },
      "list users (run it with the admin's credentials)",
    );
  } finally {
    client.close();
  }
}
