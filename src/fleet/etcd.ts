/**
 * The etcd adapter: the only module that imports `etcd3`. Reads the whole
 * namespace with one range request over its prefix; publishes a host's keys
 * in one transaction, with `alive` attached to a lease that the publisher
 * keeps alive.
 */

import {
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
  isRecoverableError,
  type IRequestOp,
  type Watcher,
} from "etcd3";

import type { BackendConfig } from "./types.js";
import { OgygiaError, delay } from "../core/index.js";
import { DeadlineError, connectError, readError, withDeadline, writeError } from "./errors.js";
import { fieldKey, namespacePrefix, snapshotFromPairs } from "./keys.js";
import type {
  FleetBackend,
  FleetPublisher,
  FleetSnapshot,
  FleetWatch,
  FleetWatchHandlers,
  HostChanges,
  HostValues,
  PublisherOptions,
} from "./types.js";
import { SnapshotRefresher } from "./watch.js";

/** Large namespaces (10,000+ hosts) exceed gRPC's default 4 MiB response limit. */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** How long a watch that etcd cancelled (compaction, ...) waits before it is made again. */
const REWATCH_DELAY_MS = 1000;

function isConnectionFailure(err: unknown): boolean {
  return (
    err instanceof DeadlineError ||
    err instanceof GRPCUnavailableError ||
    err instanceof GRPCDeadlineExceededError ||
    (err instanceof Error && /BrokenCircuitError|circuit/i.test(err.name + err.message))
  );
}

/** For the publisher, which retries either way: anything the library would retry counts too. */
function isTransientFailure(err: unknown): boolean {
  return isConnectionFailure(err) || (err instanceof Error && isRecoverableError(err));
}

/** Resolves to false instead of rejecting when etcd no longer knows the lease. */
async function unlessLeaseInvalid(promise: Promise<unknown>): Promise<boolean> {
  try {
    await promise;
    return true;
  } catch (err) {
    if (err instanceof EtcdLeaseInvalidError) return false;
    throw err;
  }
}

/** Sends one keepalive on a short-lived stream; resolves to the remaining TTL (0: unknown lease). */
async function keepaliveOnce(client: Etcd3, lease: string, timeoutMs: number): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
  try {
    return await new Promise<number>((resolve, reject) => {
      stream.on("data", (response) => {
        resolve(Number(response.TTL));
      });
      stream.on("error", reject);
      stream.on("end", () => {
        reject(new GRPCUnavailableError("the keepalive stream ended without an answer"));
      });
      stream.write({ ID: lease });
    });
  } finally {
    // Half-close rather than cancel: the library counts a cancelled stream
    // as a failed host and would drop its connections.
    stream.end();
  }
}

function createClient(config: BackendConfig): Etcd3 {
  const timeoutMs = config.timeoutSeconds * 1000;
  return new Etcd3({
    hosts: config.endpoints,
    dialTimeout: timeoutMs,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    grpcOptions: {
      "grpc.max_receive_message_length": MAX_RESPONSE_BYTES,
    },
  });
}

/** The end of the key range that holds every key starting with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  // Every prefix used here ends in "/", so the last byte can simply be incremented.
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  return end;
}

class EtcdBackend implements FleetBackend {
  readonly kind = "etcd" as const;
  readonly config: BackendConfig;
  private readonly client: Etcd3;
  private closed = false;

  constructor(config: BackendConfig) {
    this.config = config;
    this.client = createClient(config);
  }

  async readHosts(): Promise<FleetSnapshot> {
    const prefix = namespacePrefix(this.config.namespace);
    try {
      const response = await withDeadline(
        this.client.getAll().prefix(prefix).exec(),
        this.config.timeoutSeconds * 1000,
      );
      return snapshotFromPairs(prefix, response.kvs);
    } catch (err) {
      if (err instanceof OgygiaError) throw err;
      if (isConnectionFailure(err)) throw connectError("etcd", this.config, err);
      throw readError("etcd", this.config, err);
    }
  }

  /**
   * One etcd watch over the namespace prefix; each event (or reconnection,
   * after which events may have been missed) asks for a fresh range read.
   */
  watchHosts(handlers: FleetWatchHandlers): FleetWatch {
    const refresher = new SnapshotRefresher(() => this.readHosts(), handlers);
    const stop = new AbortController();
    let watcher: Watcher | undefined;
    const trigger = (): void => {
      refresher.trigger();
    };
    const start = (): void => {
      if (stop.signal.aborted) return;
      const created = this.client.watch().prefix(namespacePrefix(this.config.namespace)).watcher();
      watcher = created;
      created.on("put", trigger);
      created.on("delete", trigger);
      created.on("connected", trigger);
      // While disconnected the library reconnects with its own backoff; the
      // read this triggers reports the outage to the caller meanwhile.
      created.on("disconnected", trigger);
      // An "error" means etcd cancelled the watch (a compacted revision, ...):
      // it will not resume, so make a new one.
      created.on("error", () => {
        created.removeAllListeners();
        created.on("error", () => undefined);
        void delay(REWATCH_DELAY_MS, stop.signal).then(() => {
          start();
          trigger();
        });
      });
    };
    start();
    refresher.trigger();
    return {
      close: async () => {
        stop.abort();
        refresher.close();
        const current = watcher;
        watcher = undefined;
        if (current) {
          await withDeadline(current.cancel(), this.config.timeoutSeconds * 1000).catch(
            () => undefined,
          );
        }
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
export function openEtcd(config: BackendConfig): FleetBackend {
  return new EtcdBackend(config);
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
  private readonly client: Etcd3;
  private leaseId: string | undefined;
  private closed = false;

  constructor(config: BackendConfig, options: PublisherOptions) {
    this.config = config;
    this.host = options.host;
    this.ttlSeconds = options.leaseTtlSeconds;
    this.timeoutMs = config.timeoutSeconds * 1000;
    this.client = createClient(config);
  }

  private key(field: Parameters<typeof fieldKey>[2]): Buffer {
    return Buffer.from(fieldKey(this.config.namespace, this.host, field));
  }

  /** Runs `fn` under the deadline, mapping failures to `OgygiaError`. */
  private call<T>(fn: () => Promise<T>, what: "read" | "write"): Promise<T> {
    return etcdCall(this.config, fn, this.timeoutMs, what);
  }

  async readHost(): Promise<HostValues> {
    const hostPrefix = `${namespacePrefix(this.config.namespace)}${this.host}/`;
    const response = await this.call(
      () =>
        this.client.kv.range({ key: Buffer.from(hostPrefix), range_end: prefixEnd(hostPrefix) }),
      "read",
    );
    const snapshot = snapshotFromPairs(namespacePrefix(this.config.namespace), response.kvs);
    return snapshot.hosts.get(this.host) ?? new Map();
  }

  async write(changes: HostChanges): Promise<void> {
    const ops: IRequestOp[] = [];
    for (const [field, value] of changes.put) {
      ops.push({ request_put: { key: this.key(field), value: Buffer.from(value) } });
    }
    for (const field of changes.delete) {
      ops.push({ request_delete_range: { key: this.key(field) } });
    }
    if (ops.length === 0) return;
    // One transaction: readers never see half of a publication.
    await this.call(() => this.client.kv.txn({ success: ops }), "write");
  }

  async ensureAlive(value: string): Promise<void> {
    // A lease that expired between grant and put (or was revoked) is granted
    // anew, once; a second failure is reported like any other.
    for (let attempt = 0; attempt < 2; attempt++) {
      this.leaseId ??= (
        await this.call(() => this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }), "write")
      ).ID;
      const lease = this.leaseId;
      const put = this.client.kv.put({ key: this.key("alive"), value: Buffer.from(value), lease });
      if (await this.call(() => unlessLeaseInvalid(put), "write")) return;
      this.leaseId = undefined;
    }
    throw writeError("etcd", this.config, new Error("every lease granted was gone at once"));
  }

  async refreshAlive(): Promise<boolean> {
    const lease = this.leaseId;
    if (lease === undefined) return false;
    const ttl = await this.call(() => keepaliveOnce(this.client, lease, this.timeoutMs), "write");
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
        await this.call(
          () => unlessLeaseInvalid(this.client.leaseClient.leaseRevoke({ ID: lease })),
          "write",
        );
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
): FleetPublisher {
  return new EtcdPublisher(config, options);
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
 * types, so that `etcd3` stays in this file. Every call takes its deadline
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
  /** Grants a lease; its id (decimal, as etcd writes it) and the TTL granted. */
  grantLease(ttlSeconds: number, timeoutMs: number): Promise<{ id: string; ttlSeconds: number }>;
  /** One keepalive: the remaining TTL, 0 when etcd no longer knows the lease. */
  keepAlive(id: string, timeoutMs: number): Promise<number>;
  /** Revokes a lease (and deletes its keys); a lease already gone is no error. */
  revokeLease(id: string, timeoutMs: number): Promise<void>;
  /**
   * Watches one key from `startRevision` (inclusive). The library reconnects
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
): Promise<T> {
  try {
    return await withDeadline(fn(), timeoutMs);
  } catch (err) {
    if (err instanceof OgygiaError) throw err;
    if (isTransientFailure(err)) throw connectError("etcd", config, err);
    throw what === "read" ? readError("etcd", config, err) : writeError("etcd", config, err);
  }
}

class EtcdCoordinationClientImpl implements EtcdCoordinationClient {
  private readonly client: Etcd3;

  constructor(private readonly config: BackendConfig) {
    this.client = createClient(config);
  }

  private call<T>(fn: () => Promise<T>, timeoutMs: number, what: "read" | "write"): Promise<T> {
    return etcdCall(this.config, fn, timeoutMs, what);
  }

  async get(
    key: string,
    timeoutMs: number,
  ): Promise<{ entry: EtcdEntry | null; revision: bigint }> {
    const response = await this.call(
      () => this.client.kv.range({ key: Buffer.from(key) }, { deadline: Date.now() + timeoutMs }),
      timeoutMs,
      "read",
    );
    const kv = response.kvs[0];
    return {
      entry: kv ? { value: kv.value, modRevision: BigInt(kv.mod_revision) } : null,
      revision: BigInt(response.header.revision),
    };
  }

  async putIf(
    key: string,
    expected: bigint | "absent",
    value: Uint8Array,
    options: { lease?: string | undefined; timeoutMs: number },
  ): Promise<bigint | null> {
    const keyBytes = Buffer.from(key);
    const compare =
      expected === "absent"
        ? { key: keyBytes, target: "Create" as const, result: "Equal" as const, create_revision: 0 }
        : {
            key: keyBytes,
            target: "Mod" as const,
            result: "Equal" as const,
            mod_revision: expected.toString(),
          };
    const put =
      expected === "absent"
        ? {
            key: keyBytes,
            value: Buffer.from(value),
            ...(options.lease && { lease: options.lease }),
          }
        : { key: keyBytes, value: Buffer.from(value), ignore_lease: true };
    const response = await this.call(
      () =>
        this.client.kv.txn(
          { compare: [compare], success: [{ request_put: put }] },
          { deadline: Date.now() + options.timeoutMs },
        ),
      options.timeoutMs,
      "write",
    );
    // A transaction that writes gets the revision in its header.
    return response.succeeded ? BigInt(response.header.revision) : null;
  }

  async deleteIf(key: string, expected: bigint, timeoutMs: number): Promise<boolean> {
    const keyBytes = Buffer.from(key);
    const response = await this.call(
      () =>
        this.client.kv.txn(
          {
            compare: [
              { key: keyBytes, target: "Mod", result: "Equal", mod_revision: expected.toString() },
            ],
            success: [{ request_delete_range: { key: keyBytes } }],
          },
          { deadline: Date.now() + timeoutMs },
        ),
      timeoutMs,
      "write",
    );
    return response.succeeded;
  }

  async grantLease(
    ttlSeconds: number,
    timeoutMs: number,
  ): Promise<{ id: string; ttlSeconds: number }> {
    const response = await this.call(
      () =>
        this.client.leaseClient.leaseGrant(
          { TTL: ttlSeconds },
          { deadline: Date.now() + timeoutMs },
        ),
      timeoutMs,
      "write",
    );
    return { id: response.ID, ttlSeconds: Number(response.TTL) };
  }

  keepAlive(id: string, timeoutMs: number): Promise<number> {
    return this.call(() => keepaliveOnce(this.client, id, timeoutMs), timeoutMs, "write");
  }

  async revokeLease(id: string, timeoutMs: number): Promise<void> {
    await this.call(
      () =>
        unlessLeaseInvalid(
          this.client.leaseClient.leaseRevoke({ ID: id }, { deadline: Date.now() + timeoutMs }),
        ),
      timeoutMs,
      "write",
    );
  }

  watch(
    key: string,
    startRevision: bigint,
    handlers: { onChanges(changes: EtcdChange[]): void; onError(error: OgygiaError): void },
  ): () => Promise<void> {
    const watcher = this.client.watch().key(key).startRevision(startRevision.toString()).watcher();
    watcher.on("data", (response) => {
      handlers.onChanges(
        response.events.map((event): EtcdChange => {
          const modRevision = BigInt(event.kv.mod_revision);
          return event.type === "Put"
            ? { type: "put", value: event.kv.value, modRevision }
            : { type: "delete", modRevision };
        }),
      );
    });
    watcher.on("error", (err) => {
      handlers.onError(readError("etcd", this.config, err));
    });
    const timeoutMs = this.config.timeoutSeconds * 1000;
    return () => withDeadline(watcher.cancel(), timeoutMs).catch(() => undefined);
  }

  close(): void {
    this.client.close();
  }
}

/** Opens the etcd client that coordination uses; it connects on its first call. */
export function openEtcdCoordinationClient(config: BackendConfig): EtcdCoordinationClient {
  return new EtcdCoordinationClientImpl(config);
}
