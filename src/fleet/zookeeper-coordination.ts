/**
 * `Coordinator` over ZooKeeper, through `ZkSession` (`zookeeper-session.ts`
 * stays the only importer of `node-zookeeper-client`). Versions are `mzxid`s;
 * compare-and-swap is a `setData` at the data version of the expected node,
 * or a `create`; a lease is a session of its own, whose ephemeral nodes are
 * its keys; a watch re-reads the key each time a one-shot watcher fires.
 */

import type { BackendConfig } from "./types.js";
import { OgygiaError } from "../core/index.js";
import {
  checkKey,
  parentKey,
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
import { credentialFailure, permissionFailure, readAuth } from "./credentials.js";
import { DeadlineError, connectError, withDeadline, writeError } from "./errors.js";
import type { EventSink } from "./event-stream.js";
import { LeaseKeeper } from "./lease-keeper.js";
import {
  ZK_PERMS,
  ZkSession,
  isConnectionFailure,
  isNoNode,
  sessionFailure,
  type ZkAcl,
} from "./zookeeper-session.js";

/**
 * The ACL of the nodes a coordinator creates when it has a digest identity,
 * the publisher's policy: readable by all, everything for the creator's
 * identity (`auth`). The identity that holds the parent (`ogygia fleet
 * grant`'s admin) can still delete them.
 */
const CREATOR_ACL: readonly ZkAcl[] = [
  { perms: ZK_PERMS.read, scheme: "world", id: "anyone" },
  { perms: ZK_PERMS.all, scheme: "auth", id: "" },
];

class ZkLease implements TrackedLease {
  readonly id: string;
  readonly ttlMs: number;
  private readonly keeper: LeaseKeeper;

  constructor(
    readonly session: ZkSession,
    options: { grantedAt: number; timeoutMs: number },
  ) {
    this.id = session.sessionId.toString("hex");
    this.ttlMs = session.sessionTimeoutMs;
    // The client pings on its own; these checks find a server that stopped
    // answering, which the client would not report.
    this.keeper = new LeaseKeeper({
      ttlMs: this.ttlMs,
      grantedAt: options.grantedAt,
      timeoutMs: options.timeoutMs,
      renew: async (timeoutMs) => {
        try {
          await withDeadline(session.exists("/"), timeoutMs);
          return true;
        } catch (err) {
          if (isConnectionFailure(err)) throw new DeadlineError(timeoutMs);
          throw err;
        }
      },
    });
    session.onLost((reason) => {
      this.keeper.stop(`ZooKeeper session lost: ${reason}`);
    });
    // Once lost, the session cannot be trusted again: close it, which also
    // drops its ephemeral nodes if the server still holds them.
    this.keeper.lost.addEventListener(
      "abort",
      () => {
        session.close();
      },
      { once: true },
    );
  }

  get lost(): AbortSignal {
    return this.keeper.lost;
  }

  /** Ends the session without waiting for the server. */
  abandon(reason: string): void {
    this.keeper.stop(reason);
  }

  async revoke(): Promise<void> {
    const wasLost = this.session.isLost;
    // Stopped first, so that the close below is not reported as a loss.
    this.keeper.stop("revoked");
    // Waits (up to the session's call deadline) until the server confirms,
    // so that the ephemeral nodes are gone on return.
    if (!wasLost) await this.session.closeAndWait();
  }
}

class ZooKeeperCoordinator extends CoordinatorBase<ZkLease> {
  readonly kind = "zookeeper" as const;
  private session: ZkSession | undefined;
  private connecting: Promise<ZkSession> | undefined;

  /** The shared session for everything but leases; a lost one is replaced. */
  private async current(): Promise<ZkSession> {
    if (this.session && !this.session.isLost) return this.session;
    this.connecting ??= (async () => {
      this.session?.close();
      this.session = undefined;
      const session = await this.connect(this.timeoutMs);
      if (this.stop.signal.aborted) {
        session.close();
        throw connectError("zookeeper", this.config, new Error("coordinator closed"));
      }
      this.session = session;
      return session;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /**
   * A new session, authenticated with the configuration's digest identity
   * when it has one (the password file read now), whose nodes are then
   * created with `CREATOR_ACL`; without one, ZooKeeper's default (open to all).
   */
  private async connect(timeoutMs: number, sessionTimeoutMs?: number): Promise<ZkSession> {
    const auth = readAuth("zookeeper", this.config);
    const session = await ZkSession.connect(this.config.endpoints, timeoutMs, {
      auth,
      ...(sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs }),
    });
    if (auth) session.setCreateAcl(CREATOR_ACL);
    return session;
  }

  /** Runs `fn` under the deadline, mapping failures to `OgygiaError`. */
  private async call<T>(
    fn: (session: ZkSession) => Promise<T>,
    what: "read" | "write",
    options?: CallOptions,
    target?: string,
  ): Promise<T> {
    let session: ZkSession | undefined;
    try {
      session = await this.current();
      return await withDeadline(fn(session), this.deadline(options));
    } catch (err) {
      throw this.mapError(err, what, session, target);
    }
  }

  /** `target`: the key (or keys) the call was about, for a refusal's message. */
  private mapError(
    err: unknown,
    what: "read" | "write",
    session?: ZkSession,
    target?: string,
  ): OgygiaError {
    if (err instanceof OgygiaError) return err;
    const refused =
      credentialFailure("zookeeper", this.config, err) ??
      permissionFailure("zookeeper", this.config, err, `${what} ${target ?? "there"}`);
    if (refused) return refused;
    return sessionFailure(err, what, this.config, () => {
      if (session && this.session === session) {
        this.session = undefined;
        session.close();
      }
    });
  }

  async get(key: string, options?: CallOptions): Promise<Read> {
    checkKey(key);
    this.checkOpen();
    return this.call(
      async (session) => {
        // The parent first: a key created after it was read has a larger zxid.
        const parent = await session.exists(parentKey(key));
        const node = await session.getWithStat(key);
        if (node) {
          return {
            entry: { key, value: node.data, version: node.stat.mzxid },
            revision: node.stat.mzxid,
          };
        }
        return { entry: null, revision: parent?.pzxid ?? 0n };
      },
      "read",
      options,
      key,
    );
  }

  async compareAndSet(
    key: string,
    expected: Expected,
    value: Uint8Array,
    options?: SetOptions,
  ): Promise<CasResult> {
    checkKey(key);
    this.checkOpen();
    const data = Buffer.from(value);
    if (expected === "absent") {
      const lease = options?.lease && this.ownLease(options.lease);
      const stat = await this.create(key, data, lease, options);
      return stat ? { won: true, version: stat.mzxid } : { won: false };
    }
    if (options?.lease) throw new Error("a lease can only be given when creating a key");
    return this.call(
      async (session) => {
        const stat = await session.exists(key);
        if (stat?.mzxid !== expected.version) return { won: false };
        // Only a delete, a re-create and as many writes, all within this
        // round trip, could give the node its data version back.
        const written = await session.setDataAt(key, data, stat.version);
        return written ? { won: true, version: written.mzxid } : { won: false };
      },
      "write",
      options,
      key,
    );
  }

  /** Creates the key (over the lease's session when given), creating missing parents once. */
  private async create(
    key: string,
    data: Buffer,
    lease: ZkLease | undefined,
    options?: CallOptions,
  ): Promise<{ mzxid: bigint } | null> {
    const mode = lease ? "ephemeral" : "persistent";
    const attempt = async (): Promise<{ mzxid: bigint } | null | "no-parent"> => {
      const session = lease?.session ?? (await this.current());
      try {
        return await withDeadline(session.createWithStat(key, data, mode), this.deadline(options));
      } catch (err) {
        if (isNoNode(err)) return "no-parent";
        throw this.mapError(err, "write", session, key);
      }
    };
    if (lease?.lost.aborted === true) {
      throw writeError("zookeeper", this.config, new Error(`the lease for ${key} is lost`));
    }
    const first = await attempt();
    if (first !== "no-parent") return first;
    await this.call((session) => session.mkdirp(parentKey(key)), "write", options, parentKey(key));
    const second = await attempt();
    if (second !== "no-parent") return second;
    throw writeError("zookeeper", this.config, new Error(`the parent of ${key} keeps vanishing`));
  }

  private ownLease(lease: Lease): ZkLease {
    if (!(lease instanceof ZkLease) || !this.owns(lease)) {
      throw new Error("the lease was not granted by this coordinator, or has ended");
    }
    return lease;
  }

  async compareAndSetMany(
    changes: readonly KeyChange[],
    options?: CallOptions,
  ): Promise<CasManyResult> {
    for (const change of changes) checkKey(change.key);
    this.checkOpen();
    return this.call(
      async (session) => {
        const stats = await Promise.all(changes.map((c) => session.exists(c.key)));
        const ops: Parameters<ZkSession["multiAt"]>[0][number][] = [];
        const parents = new Set<string>();
        for (const [i, change] of changes.entries()) {
          const stat = stats[i] ?? null;
          if (
            change.expected === "absent" ? stat !== null : stat?.mzxid !== change.expected.version
          ) {
            return { won: false };
          }
          if (change.value === null) {
            if (stat) ops.push({ type: "remove", path: change.key, version: stat.version });
          } else if (stat) {
            ops.push({
              type: "set",
              path: change.key,
              data: Buffer.from(change.value),
              version: stat.version,
            });
          } else {
            ops.push({ type: "create", path: change.key, data: Buffer.from(change.value) });
            parents.add(parentKey(change.key));
          }
        }
        if (ops.length === 0) {
          return { won: true, versions: changes.map(() => "absent" as const) };
        }
        // Parents made beforehand: a multi cannot create what may already exist.
        for (const parent of parents) {
          if ((await session.exists(parent)) === null) await session.mkdirp(parent);
        }
        const zxid = await session.multiAt(ops);
        if (zxid === null) return { won: false };
        return {
          won: true,
          versions: changes.map((c) => (c.value === null ? ("absent" as const) : zxid)),
        };
      },
      "write",
      options,
      changes.map((c) => c.key).join(", "),
    );
  }

  async compareAndDelete(
    key: string,
    expected: { version: Revision },
    options?: CallOptions,
  ): Promise<boolean> {
    checkKey(key);
    this.checkOpen();
    return this.call(
      async (session) => {
        const stat = await session.exists(key);
        if (stat?.mzxid !== expected.version) return false;
        return session.removeAt(key, stat.version);
      },
      "write",
      options,
      key,
    );
  }

  async grantLease(options: LeaseOptions): Promise<Lease> {
    this.checkOpen();
    const timeoutMs = this.deadline(options);
    const grantedAt = Date.now();
    let session: ZkSession;
    try {
      session = await this.connect(timeoutMs, options.ttlMs);
    } catch (err) {
      throw this.mapError(err, "write");
    }
    return this.track(new ZkLease(session, { grantedAt, timeoutMs }));
  }

  watch(key: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    checkKey(key);
    this.checkOpen();
    return this.watchStream(key, options, (sink, signal) => {
      const running = this.watchLoop(key, options.after, sink, signal).catch((err: unknown) => {
        sink.fail(err);
      });
      return () => running;
    });
  }

  /**
   * One round per notification: read the key with a watcher (or set one on
   * its creation), report what is newer than the last event, wait. Each
   * round makes calls with deadlines, then waits for the server, so the
   * loop runs only as often as the key changes.
   */
  private async watchLoop(
    key: string,
    after: Revision,
    sink: EventSink<WatchEvent>,
    signal: AbortSignal,
  ): Promise<void> {
    let last = after;
    let absentReported = false;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      wake?.();
    };
    signal.addEventListener("abort", notify, { once: true });
    let watched: ZkSession | undefined;
    while (!signal.aborted) {
      const changed = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const session = await this.current().catch((err: unknown) => {
        throw this.mapError(err, "read");
      });
      if (session !== watched) {
        // Watchers die with their session: a new one is read again at once.
        watched = session;
        session.onLost(notify);
      }
      const state = await this.call(async (s): Promise<"retry" | WatchEvent | null> => {
        const node = await s.getWithStat(key, notify);
        if (node) {
          absentReported = false;
          return node.stat.mzxid > last
            ? { type: "put", key, value: node.data, version: node.stat.mzxid }
            : null;
        }
        // Read after the key was seen missing: its pzxid is at least the delete's.
        const parent = await s.exists(parentKey(key));
        // Created meanwhile: read it in the next round.
        if ((await s.exists(key, notify)) !== null) return "retry";
        const revision = parent?.pzxid ?? 0n;
        if (absentReported || revision <= last) return null;
        absentReported = true;
        return { type: "delete", key, revision };
      }, "read");
      if (state === "retry") continue;
      if (state) {
        last = state.type === "put" ? state.version : state.revision;
        sink.push(state);
      }
      await changed;
    }
    signal.removeEventListener("abort", notify);
  }

  protected closeConnections(): void {
    this.session?.close();
    this.session = undefined;
  }
}

/** A coordinator over ZooKeeper; it connects on its first call. */
export function openZooKeeperCoordinator(config: BackendConfig): Coordinator {
  return new ZooKeeperCoordinator(config);
}
