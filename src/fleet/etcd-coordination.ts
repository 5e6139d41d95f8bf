/**
 * `Coordinator` over etcd, through the adapter's `EtcdCoordinationClient`
 * (`etcd.ts` stays the only user of the etcd client). Versions are mod
 * revisions; compare-and-swap is one transaction; a lease is an etcd lease
 * renewed by `LeaseKeeper`; a watch is an etcd watch from `after + 1`, which
 * etcd replays from its history.
 */

import type { BackendConfig } from "./types.js";
import type { OgygiaError } from "../core/index.js";
import {
  checkKey,
  type CallOptions,
  type CasManyResult,
  type CasResult,
  type Coordinator,
  type Expected,
  type KeyChange,
  type Lease,
  type LeaseOptions,
  type Read,
  type Revision,
  type SetOptions,
  type WatchEvent,
  type WatchOptions,
} from "./coordination.js";
import { CoordinatorBase, type TrackedLease } from "./coordinator-base.js";
import { openEtcdCoordinationClient, type EtcdCoordinationClient } from "./etcd.js";
import { LeaseKeeper } from "./lease-keeper.js";

class EtcdLease implements TrackedLease {
  readonly id: string;
  readonly ttlMs: number;
  /** etcd's id, in decimal, as the client sends it. */
  readonly etcdId: string;
  private readonly keeper: LeaseKeeper;
  private readonly timeoutMs: number;

  constructor(
    private readonly client: EtcdCoordinationClient,
    grant: { id: string; ttlSeconds: number; grantedAt: number; timeoutMs: number },
  ) {
    this.etcdId = grant.id;
    this.id = BigInt(grant.id).toString(16);
    this.ttlMs = grant.ttlSeconds * 1000;
    this.timeoutMs = grant.timeoutMs;
    this.keeper = new LeaseKeeper({
      ttlMs: this.ttlMs,
      grantedAt: grant.grantedAt,
      timeoutMs: grant.timeoutMs,
      renew: async (timeoutMs) => (await client.keepAlive(this.etcdId, timeoutMs)) > 0,
    });
  }

  get lost(): AbortSignal {
    return this.keeper.lost;
  }

  /** Stops renewing; the lease expires in etcd after its TTL. */
  abandon(reason: string): void {
    this.keeper.stop(reason);
  }

  async revoke(options?: CallOptions): Promise<void> {
    this.keeper.stop("revoked");
    await this.client.revokeLease(this.etcdId, options?.timeoutMs ?? this.timeoutMs);
  }
}

class EtcdCoordinator extends CoordinatorBase<EtcdLease> {
  readonly kind = "etcd" as const;
  private readonly client: EtcdCoordinationClient;

  constructor(config: BackendConfig) {
    super(config);
    this.client = openEtcdCoordinationClient(config);
  }

  async get(key: string, options?: CallOptions): Promise<Read> {
    checkKey(key);
    this.checkOpen();
    const { entry, revision } = await this.client.get(key, this.deadline(options));
    return {
      entry: entry && { key, value: entry.value, version: entry.modRevision },
      revision,
    };
  }

  async compareAndSet(
    key: string,
    expected: Expected,
    value: Uint8Array,
    options?: SetOptions,
  ): Promise<CasResult> {
    checkKey(key);
    this.checkOpen();
    const lease = options?.lease && this.ownLease(options.lease, expected);
    const version = await this.client.putIf(
      key,
      expected === "absent" ? "absent" : expected.version,
      value,
      {
        lease: lease?.etcdId,
        timeoutMs: this.deadline(options),
      },
    );
    return version === null ? { won: false } : { won: true, version };
  }

  async compareAndSetMany(
    changes: readonly KeyChange[],
    options?: CallOptions,
  ): Promise<CasManyResult> {
    for (const change of changes) checkKey(change.key);
    this.checkOpen();
    const revision = await this.client.changeIf(
      changes.map((change) => ({
        key: change.key,
        expected: change.expected === "absent" ? "absent" : change.expected.version,
        value: change.value,
      })),
      this.deadline(options),
    );
    if (revision === null) return { won: false };
    return { won: true, versions: changes.map((c) => (c.value === null ? "absent" : revision)) };
  }

  async compareAndDelete(
    key: string,
    expected: { version: Revision },
    options?: CallOptions,
  ): Promise<boolean> {
    checkKey(key);
    this.checkOpen();
    return this.client.deleteIf(key, expected.version, this.deadline(options));
  }

  private ownLease(lease: Lease, expected: Expected): EtcdLease {
    if (!(lease instanceof EtcdLease) || !this.owns(lease)) {
      throw new Error("the lease was not granted by this coordinator");
    }
    if (expected !== "absent") throw new Error("a lease can only be given when creating a key");
    return lease;
  }

  async grantLease(options: LeaseOptions): Promise<Lease> {
    this.checkOpen();
    const timeoutMs = this.deadline(options);
    const grantedAt = Date.now();
    const grant = await this.client.grantLease(Math.ceil(options.ttlMs / 1000), timeoutMs);
    return this.track(new EtcdLease(this.client, { ...grant, grantedAt, timeoutMs }));
  }

  watch(key: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    checkKey(key);
    this.checkOpen();
    return this.watchStream(key, options, (sink) =>
      this.client.watch(key, options.after + 1n, {
        onChanges: (changes) => {
          for (const change of changes) {
            sink.push(
              change.type === "put"
                ? { type: "put", key, value: change.value, version: change.modRevision }
                : { type: "delete", key, revision: change.modRevision },
            );
          }
        },
        onError: (error: OgygiaError) => {
          sink.fail(error);
        },
      }),
    );
  }

  protected closeConnections(): void {
    this.client.close();
  }
}

/** A coordinator over etcd; it connects on its first call. */
export function openEtcdCoordinator(config: BackendConfig): Coordinator {
  return new EtcdCoordinator(config);
}
