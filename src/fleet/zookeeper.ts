/**
 * The ZooKeeper fleet backend and publisher. A snapshot read goes through
 * `ZkWire` (`zookeeper-wire.ts`: `multiRead` on a connection of its own);
 * watches, the publisher and servers before 3.6 go through `ZkSession`
 * (`zookeeper-session.ts`, the only importer of `node-zookeeper-client`),
 * loaded only when one of them is used.
 */

import type { BackendConfig } from "./types.js";
import { OgygiaError, errorMessage } from "../core/index.js";
import { anotherPublisher, credentialFailure, permissionFailure, readAuth } from "./credentials.js";
import { connectError, readError, withDeadline } from "./errors.js";
import {
  fieldKey,
  isFleetField,
  isValidHostSegment,
  rolloutPrefix,
  tableFromSnapshot,
} from "./keys.js";
import type {
  FleetBackend,
  FleetField,
  FleetPublisher,
  FleetSnapshot,
  FleetTable,
  FleetWatch,
  FleetWatchHandlers,
  HostChanges,
  HostValues,
  PublisherOptions,
} from "./types.js";
import { SnapshotRefresher } from "./watch.js";
import { isConnectionFailure, sessionFailure } from "./zookeeper-errors.js";
import type { ZkAcl, ZkConnectOptions, ZkSession } from "./zookeeper-session.js";
import type * as ZkSessionModule from "./zookeeper-session.js";
import { ZkWire, isMultiReadUnsupported } from "./zookeeper-wire.js";

/** How many hosts are read at once, node by node; ZooKeeper pipelines the reads on one socket. */
const READ_CONCURRENCY = 500;

/** Loads the client library only when a session is needed. */
async function connectSession(
  endpoints: readonly string[],
  timeoutMs: number,
  options?: ZkConnectOptions,
): Promise<ZkSession> {
  const { ZkSession } = await import("./zookeeper-session.js");
  return ZkSession.connect(endpoints, timeoutMs, options);
}

/** The reads a bulk snapshot needs: `ZkWire`'s, or a test's wrapper of it. */
export interface ZkBulkReader {
  getChildrenMany(paths: readonly string[]): Promise<(string[] | null)[]>;
  getDataMany(paths: readonly string[]): Promise<(Buffer | null)[]>;
}

export interface BulkReadOptions {
  /** Hosts listed (then read) per request. */
  hostsPerRequest?: number;
  /** Batches of hosts in flight at once: at most this many requests wait for an answer. */
  batchesInFlight?: number;
}

/** 100 hosts a request, 4 batches in flight: the fastest of those measured on 10,000 hosts. */
const BULK_DEFAULTS: Required<BulkReadOptions> = { hostsPerRequest: 100, batchesInFlight: 4 };

/**
 * Reads the namespace in bulk, as `readTree` does node by node: the
 * namespace's children, then for each batch of hosts their children in one
 * request, then the fleet fields listed in another. A host whose node
 * vanished after the namespace was listed has no values; a field that
 * vanished after its host was listed is left out.
 */
export async function readTreeBulk(
  reader: ZkBulkReader,
  namespace: string,
  options: BulkReadOptions = {},
): Promise<FleetSnapshot> {
  const { hostsPerRequest, batchesInFlight } = { ...BULK_DEFAULTS, ...options };
  const [children] = await reader.getChildrenMany([namespace]);
  const hosts: FleetSnapshot["hosts"] = new Map();
  let strayKeys = 0;
  const valid: [string, HostValues][] = [];
  for (const host of (children ?? []).sort()) {
    if (!isValidHostSegment(host)) {
      strayKeys += 1;
      continue;
    }
    const values: HostValues = new Map();
    hosts.set(host, values);
    valid.push([host, values]);
  }
  const batches: [string, HostValues][][] = [];
  for (let i = 0; i < valid.length; i += hostsPerRequest) {
    batches.push(valid.slice(i, i + hostsPerRequest));
  }
  await forEachLimit(batches, batchesInFlight, async (batch) => {
    const listed = await reader.getChildrenMany(batch.map(([host]) => `${namespace}/${host}`));
    const paths: string[] = [];
    const targets: [HostValues, FleetField][] = [];
    batch.forEach(([host, values], i) => {
      for (const field of listed[i] ?? []) {
        if (!isFleetField(field)) {
          strayKeys += 1;
          continue;
        }
        paths.push(fieldKey(namespace, host, field));
        targets.push([values, field]);
      }
    });
    if (paths.length === 0) return;
    const data = await reader.getDataMany(paths);
    targets.forEach(([values, field], i) => {
      const value = data[i];
      if (value) values.set(field, value);
    });
  });
  return { hosts, strayKeys };
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Reads the namespace over `session` node by node (for watches, and for
 * servers without `multiRead`): one listing per host, then only the
 * fields that exist. With `watcher`, every node read is watched with it.
 */
async function readTree(
  session: ZkSession,
  namespace: string,
  watcher?: () => void,
): Promise<FleetSnapshot> {
  let children = await session.getChildren(namespace, watcher);
  if (children === null && watcher) {
    // Watch for the namespace to be created; if it appeared meanwhile, list it.
    if ((await session.exists(namespace, watcher)) !== null) {
      children = await session.getChildren(namespace, watcher);
    }
  }
  const hosts: FleetSnapshot["hosts"] = new Map();
  let strayKeys = 0;
  // List each host's children first and read only the fields that exist:
  // a read of a missing node costs the client an exception with a stack trace.
  await forEachLimit((children ?? []).sort(), READ_CONCURRENCY, async (host) => {
    if (!isValidHostSegment(host)) {
      strayKeys += 1;
      return;
    }
    const values: HostValues = new Map();
    hosts.set(host, values);
    const fields = (await session.getChildren(`${namespace}/${host}`, watcher)) ?? [];
    await Promise.all(
      fields.map(async (field) => {
        if (!isFleetField(field)) {
          strayKeys += 1;
          return;
        }
        const data = await session.getData(fieldKey(namespace, host, field), watcher);
        if (data !== null) values.set(field, data);
      }),
    );
  });
  return { hosts, strayKeys };
}

class ZooKeeperBackend implements FleetBackend {
  readonly kind = "zookeeper" as const;
  readonly config: BackendConfig;
  private session: ZkSession | undefined;
  private wire: ZkWire | undefined;
  /** The server answered that it does not know `multiRead` (before 3.6): read node by node. */
  private multiReadUnsupported = false;
  private readonly watches = new Set<FleetWatch>();

  constructor(config: BackendConfig) {
    this.config = config;
  }

  private mapError(err: unknown): unknown {
    if (err instanceof OgygiaError) return err;
    if (isConnectionFailure(err)) return connectError("zookeeper", this.config, err);
    return readError("zookeeper", this.config, new Error(errorMessage(err)));
  }

  async readHosts(): Promise<FleetSnapshot> {
    const timeoutMs = this.config.timeoutSeconds * 1000;
    try {
      return await withDeadline(this.read(timeoutMs), timeoutMs);
    } catch (err) {
      throw this.mapError(err);
    }
  }

  async readTable(): Promise<FleetTable> {
    return tableFromSnapshot(await this.readHosts());
  }

  private async read(timeoutMs: number): Promise<FleetSnapshot> {
    if (!this.multiReadUnsupported) {
      if (this.wire?.isLost === true) this.wire = undefined;
      this.wire ??= await ZkWire.connect(this.config.endpoints, timeoutMs);
      try {
        return await readTreeBulk(this.wire, this.config.namespace);
      } catch (err) {
        // Whatever failed, the next read starts on a new connection.
        this.wire.close();
        this.wire = undefined;
        if (!isMultiReadUnsupported(err)) throw err;
        this.multiReadUnsupported = true;
      }
    }
    this.session ??= await connectSession(this.config.endpoints, timeoutMs);
    return readTree(this.session, this.config.namespace);
  }

  /**
   * One session with a watch on every node read (the namespace, each host,
   * each field); any notification asks for a fresh read, which sets the
   * watches again. The client keeps one watcher per path, so this stays
   * bounded. A lost session is replaced on the next read.
   */
  watchHosts(handlers: FleetWatchHandlers): FleetWatch {
    const timeoutMs = this.config.timeoutSeconds * 1000;
    let session: ZkSession | undefined;
    const watcher = (): void => {
      refresher.trigger();
    };
    const read = async (): Promise<FleetSnapshot> => {
      try {
        if (session?.isLost === true) {
          session.close();
          session = undefined;
        }
        if (!session) {
          const fresh = await connectSession(this.config.endpoints, timeoutMs);
          if (refresher.isClosed()) {
            fresh.close();
            throw connectError("zookeeper", this.config, new Error("watch closed"));
          }
          session = fresh;
          // Watches die with the session: read everything again on a new one.
          fresh.onLost(watcher);
        }
        return await withDeadline(readTree(session, this.config.namespace, watcher), timeoutMs);
      } catch (err) {
        throw this.mapError(err);
      }
    };
    const refresher = new SnapshotRefresher(read, handlers);
    refresher.trigger();
    const watch: FleetWatch = {
      close: () => {
        refresher.close();
        session?.close();
        session = undefined;
        this.watches.delete(watch);
        return Promise.resolve();
      },
    };
    this.watches.add(watch);
    return watch;
  }

  async close(): Promise<void> {
    this.wire?.close();
    this.wire = undefined;
    this.session?.close();
    this.session = undefined;
    await Promise.all([...this.watches].map((w) => w.close()));
  }
}

/** Creates a ZooKeeper backend; it connects on the first request. */
export function openZooKeeper(config: BackendConfig): FleetBackend {
  return new ZooKeeperBackend(config);
}

/**
 * Publishes one host. `alive` is an ephemeral node of this publisher's
 * session: it disappears when the session is closed or expires. A lost
 * session (expired, or dropped: the client cannot be trusted after either)
 * is closed and replaced by a new one on the next call, and the loss is
 * reported so that the caller creates `alive` again.
 */
class ZooKeeperPublisher implements FleetPublisher {
  readonly kind = "zookeeper" as const;
  readonly config: BackendConfig;
  readonly host: string;
  private readonly timeoutMs: number;
  private readonly sessionTimeoutMs: number;
  private session: ZkSession | undefined;
  private readonly lostListeners: ((reason: string) => void)[] = [];
  private closed = false;
  /** Every session this publisher made (hex ids): an ephemeral \`alive\` of one of them is its own. */
  private readonly ownSessions = new Set<string>();
  /** Digest authentication, read from `password_file` when the publisher is made. */
  private readonly auth: { username: string; password: string } | undefined;

  constructor(config: BackendConfig, options: PublisherOptions) {
    this.config = config;
    this.host = options.host;
    this.timeoutMs = config.timeoutSeconds * 1000;
    this.sessionTimeoutMs = options.leaseTtlSeconds * 1000;
    this.auth = readAuth("zookeeper", config);
  }

  /**
   * With digest authentication: checks that this identity may write the
   * host's node (a harmless write of its empty data), and returns the ACL of
   * the nodes the host creates: readable by all, writable by this session's
   * identity (\`auth\`). The admin holds the host node itself (\`ogygia fleet
   * grant\`), so it can delete and re-create them. ZooKeeper hides the hashes
   * of digest identities, but not their user names: a host node granted to
   * this user under another password is told apart from one not granted.
   */
  private async createAcl(
    session: ZkSession,
    auth: { username: string; password: string },
  ): Promise<ZkAcl[]> {
    const { ZK_PERMS } = await import("./zookeeper-session.js");
    try {
      await session.setData(this.hostPath, Buffer.alloc(0));
    } catch (err) {
      if (!errorMessage(err).includes("NO_AUTH")) throw err;
      const acl = (await session.getAcl(this.hostPath)) ?? [];
      const sameUser = acl.some(
        (a) => a.scheme === "digest" && a.id.startsWith(`${auth.username}:`),
      );
      throw new Error(
        sameUser
          ? `authentication failed: ${this.hostPath} is granted to user ${JSON.stringify(auth.username)} with another password (NO_AUTH)`
          : `permission denied: ${this.hostPath} is not granted to user ${JSON.stringify(auth.username)} (NO_AUTH)`,
        { cause: err },
      );
    }
    return [
      { perms: ZK_PERMS.read, scheme: "world", id: "anyone" },
      { perms: ZK_PERMS.all, scheme: "auth", id: "" },
    ];
  }

  private path(field: Parameters<typeof fieldKey>[2]): string {
    return fieldKey(this.config.namespace, this.host, field);
  }

  /** A method, not a field read: it changes while a connection is made. */
  private isClosed(): boolean {
    return this.closed;
  }

  private get hostPath(): string {
    return `${this.config.namespace}/${this.host}`;
  }

  /** The current session, or a new one when there is none or it was lost. */
  private async current(): Promise<ZkSession> {
    if (this.closed) throw connectError("zookeeper", this.config, new Error("publisher closed"));
    if (this.session && !this.session.isLost) return this.session;
    this.session?.close();
    this.session = undefined;
    const session = await connectSession(this.config.endpoints, this.timeoutMs, {
      sessionTimeoutMs: this.sessionTimeoutMs,
      auth: this.auth,
    });
    if (this.auth) {
      try {
        session.setCreateAcl(await this.createAcl(session, this.auth));
      } catch (err) {
        session.close();
        throw err;
      }
    }
    if (this.isClosed()) {
      // Closed while connecting: this session must not outlive the publisher.
      session.close();
      throw connectError("zookeeper", this.config, new Error("publisher closed"));
    }
    this.session = session;
    this.ownSessions.add(session.sessionId.toString("hex"));
    session.onLost((reason) => {
      if (this.session !== session || this.closed) return;
      // Close at once: a dropped client keeps reconnecting on its own, and
      // after an expiry it could never be used again anyway.
      this.session = undefined;
      session.close();
      for (const listener of this.lostListeners) listener(reason);
    });
    return session;
  }

  /**
   * Runs `fn` on the current session under the deadline, mapping failures to
   * `OgygiaError`. A call that times out drops the session: a server that
   * stopped answering may never tell the client, and a new session may
   * reach another server of the ensemble.
   */
  private async call<T>(
    fn: (session: ZkSession) => Promise<T>,
    what: "read" | "write",
  ): Promise<T> {
    let session: ZkSession | undefined;
    try {
      session = await this.current();
      return await withDeadline(fn(session), this.timeoutMs);
    } catch (err) {
      if (err instanceof OgygiaError) throw err;
      const refused =
        credentialFailure("zookeeper", this.config, err) ??
        permissionFailure("zookeeper", this.config, err, `write ${this.hostPath}/`);
      if (refused) throw refused;
      throw sessionFailure(err, what, this.config, () => {
        if (session && this.session === session) {
          this.session = undefined;
          session.close();
        }
      });
    }
  }

  readHost(): Promise<HostValues> {
    return this.call(async (session) => {
      const values: HostValues = new Map();
      const fields = (await session.getChildren(this.hostPath)) ?? [];
      await Promise.all(
        fields.filter(isFleetField).map(async (field) => {
          const data = await session.getData(this.path(field));
          if (data !== null) values.set(field, data);
        }),
      );
      return values;
    }, "read");
  }

  write(changes: HostChanges): Promise<void> {
    return this.call(async (session) => {
      await this.checkOwner(session);
      for (const [field, value] of changes.put) {
        const path = this.path(field);
        const data = Buffer.from(value);
        if (await session.setData(path, data)) continue;
        await session.mkdirp(this.hostPath);
        // Created by someone else meanwhile: write over it.
        if (!(await session.create(path, data, "persistent"))) await session.setData(path, data);
      }
      for (const field of changes.delete) await session.remove(this.path(field));
    }, "write");
  }

  /**
   * Refuses to write while another publisher's session holds \`alive\`
   * (issue 13, row 7): the daemon then stands by and retries.
   */
  private async checkOwner(session: ZkSession): Promise<void> {
    const path = this.path("alive");
    const stat = await session.exists(path);
    if (stat === null || stat.ephemeralOwner.equals(session.sessionId)) return;
    const owner = stat.ephemeralOwner.toString("hex");
    if (this.ownSessions.has(owner) || /^0+$/.test(owner)) return;
    const since = (await session.getData(path))?.toString("utf8") ?? "";
    throw anotherPublisher(this.config, this.host, `session 0x${owner}`, since);
  }

  ensureAlive(value: string): Promise<void> {
    return this.call(async (session) => {
      const path = this.path("alive");
      const data = Buffer.from(value);
      await session.mkdirp(this.hostPath);
      // Bounded: each round either creates the node or removes a stale one.
      for (let attempt = 0; attempt < 3; attempt++) {
        if (await session.create(path, data, "ephemeral")) return;
        const stat = await session.exists(path);
        if (stat === null) continue;
        if (stat.ephemeralOwner.equals(session.sessionId)) return;
        const owner = stat.ephemeralOwner.toString("hex");
        if (!this.ownSessions.has(owner)) {
          // Another publisher's session (issue 13, row 7: two publishers
          // with one host name): stand by until it is gone.
          const since = (await session.getData(path))?.toString("utf8") ?? "";
          throw anotherPublisher(this.config, this.host, `session 0x${owner}`, since);
        }
        // Left by an earlier session of this publisher (dropped while the
        // server still held it): take it over.
        await session.remove(path, stat.version);
      }
      throw new Error(`${path} keeps being re-created by another session`);
    }, "write");
  }

  refreshAlive(): Promise<boolean> {
    // Without a live session there is no ephemeral node of ours.
    if (this.session?.isLost !== false) return Promise.resolve(false);
    return this.call(async (session) => {
      const stat = await session.exists(this.path("alive"));
      return stat?.ephemeralOwner.equals(session.sessionId) ?? false;
    }, "read");
  }

  onLivenessLost(listener: (reason: string) => void): void {
    this.lostListeners.push(listener);
  }

  async close(options: { revoke: boolean }): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    if (!session) return;
    if (options.revoke && !session.isLost) {
      // Closing the session removes the ephemeral node; wait for the server
      // to confirm, so that the host shows offline the moment this returns.
      await session.closeAndWait();
    } else {
      session.close();
    }
  }
}

/** Creates a ZooKeeper publisher for one host; it connects on its first call. */
export function openZooKeeperPublisher(
  config: BackendConfig,
  options: PublisherOptions,
): FleetPublisher {
  return new ZooKeeperPublisher(config, options);
}

// ---------------------------------------------------------------- per-host grants

/** Runs `fn` on an admin session (the configuration's digest identity), mapping failures. */
async function withAdminSession<T>(
  config: BackendConfig,
  fn: (session: ZkSession, admin: string, zk: typeof ZkSessionModule) => Promise<T>,
): Promise<T> {
  const auth = readAuth("zookeeper", config);
  if (!auth) {
    throw new OgygiaError(
      "ERR_OGYGIA_CONFIG_INVALID",
      "ogygia fleet grant, revoke and hosts need the admin's digest identity: " +
        "username and password_file in [ogygia.zookeeper]",
      { hint: "Run them on the operator's machine with a configuration naming the admin." },
    );
  }
  const zk = await import("./zookeeper-session.js");
  const timeoutMs = config.timeoutSeconds * 1000;
  let session: ZkSession | undefined;
  try {
    session = await zk.ZkSession.connect(config.endpoints, timeoutMs, { auth });
    return await withDeadline(
      fn(session, zk.digestId(auth.username, auth.password), zk),
      timeoutMs * 4,
    );
  } catch (err) {
    const refused =
      credentialFailure("zookeeper", config, err) ??
      permissionFailure("zookeeper", config, err, `administer ${config.namespace}`);
    if (refused) throw refused;
    throw sessionFailure(err, "write", config, () => undefined);
  } finally {
    session?.close();
  }
}

/**
 * The rollout's folders a granted host's agent writes in (docs/updates.md,
 * "Keys"), and the rights its identity gets on each: creating and deleting
 * its slot locks, creating failed-path records. ZooKeeper checks these on
 * the parent, so they cover every child: a host may delete another host's
 * slot lock, and create (never change) any failed record.
 */
function rolloutFolders(
  namespace: string,
  perms: typeof ZkSessionModule.ZK_PERMS,
): { path: string; perms: number }[] {
  const prefix = rolloutPrefix(namespace);
  return [
    { path: `${prefix}/slots`, perms: perms.create | perms.delete },
    { path: `${prefix}/failed`, perms: perms.create },
  ];
}

/** Whether an ACL entry is `host`'s digest identity (whatever its password). */
function isHostEntry(entry: ZkAcl, host: string): boolean {
  return entry.scheme === "digest" && entry.id.startsWith(`${host}:`);
}

/** Whether anyone (`world:anyone`) may do more than read the node. */
function openToAll(acl: readonly ZkAcl[] | null, read: number): boolean {
  return acl?.some((a) => a.scheme === "world" && a.perms !== read) === true;
}

/**
 * Makes the rollout's nodes what `host`'s agent needs and no more: the
 * prefix and the plan readable by all and writable by the admin, the
 * slots and failed folders with `host`'s rights (`rolloutFolders`) beside
 * those of the hosts granted before. Nodes made open to all (by a
 * coordinator without credentials, before isolation) are closed, failed
 * records included; slot locks end with their agents' sessions.
 */
async function grantRollout(
  session: ZkSession,
  namespace: string,
  host: string,
  ids: { admin: string; host: string },
  zk: typeof ZkSessionModule,
): Promise<void> {
  const { ZK_PERMS } = zk;
  const world = { perms: ZK_PERMS.read, scheme: "world", id: "anyone" };
  const adminAll = { perms: ZK_PERMS.all, scheme: "digest", id: ids.admin };
  const closed = [world, adminAll];
  const prefix = rolloutPrefix(namespace);
  session.setCreateAcl(closed);
  for (const path of [prefix, `${prefix}/plan`]) {
    if (openToAll(await session.getAcl(path), ZK_PERMS.read)) await session.setAcl(path, closed);
  }
  for (const folder of rolloutFolders(namespace, ZK_PERMS)) {
    await session.mkdirp(folder.path);
    await session.updateAcl(folder.path, (acl) => [
      world,
      adminAll,
      ...acl.filter(
        (a) =>
          a.scheme !== "world" &&
          !isHostEntry(a, host) &&
          !(a.scheme === "digest" && a.id === ids.admin),
      ),
      { perms: folder.perms, scheme: "digest", id: ids.host },
    ]);
  }
  const failed = `${prefix}/failed`;
  for (const child of (await session.getChildren(failed)) ?? []) {
    const path = `${failed}/${child}`;
    if (openToAll(await session.getAcl(path), ZK_PERMS.read)) await session.setAcl(path, closed);
  }
}

/**
 * Takes `host`'s rights on the rollout's folders away and deletes the slot
 * locks it holds (its agent's session would keep them); true when it had any.
 */
async function revokeRollout(
  session: ZkSession,
  namespace: string,
  host: string,
  zk: typeof ZkSessionModule,
): Promise<boolean> {
  let had = false;
  for (const folder of rolloutFolders(namespace, zk.ZK_PERMS)) {
    await session.updateAcl(folder.path, (acl) => {
      if (!acl.some((a) => isHostEntry(a, host))) return null;
      had = true;
      return acl.filter((a) => !isHostEntry(a, host));
    });
  }
  const slots = `${rolloutPrefix(namespace)}/slots`;
  for (const child of (await session.getChildren(slots)) ?? []) {
    const node = await session.getWithStat(`${slots}/${child}`);
    if (node?.data.toString("utf8") === host) {
      await session.removeAt(`${slots}/${child}`, node.stat.version);
    }
  }
  return had;
}

/**
 * Gives `host` the digest identity `host:password` and the ACL that
 * isolates it: the namespace readable by all and administered by the admin
 * (this configuration's identity), the host's node and the nodes under it
 * readable by all and writable by the host and the admin; and the rights
 * its update agent needs on the rollout's nodes (`grantRollout`).
 */
export function zooKeeperGrantHost(
  config: BackendConfig,
  host: string,
  password: string,
): Promise<void> {
  return withAdminSession(config, async (session, admin, zk) => {
    const { ZK_PERMS } = zk;
    const world = { perms: ZK_PERMS.read, scheme: "world", id: "anyone" };
    const adminAll = { perms: ZK_PERMS.all, scheme: "digest", id: admin };
    const namespaceAcl = [world, adminAll];
    const hostAcl = [
      world,
      { perms: ZK_PERMS.all, scheme: "digest", id: zk.digestId(host, password) },
      adminAll,
    ];
    session.setCreateAcl(namespaceAcl);
    await session.mkdirp(config.namespace);
    await session.setAcl(config.namespace, namespaceAcl);
    const hostPath = `${config.namespace}/${host}`;
    session.setCreateAcl(hostAcl);
    if (!(await session.create(hostPath, Buffer.alloc(0), "persistent"))) {
      await session.setAcl(hostPath, hostAcl);
    }
    // Nodes the host made before isolation: the admin re-creates them under the host's ACL.
    for (const child of (await session.getChildren(hostPath)) ?? []) {
      const path = `${hostPath}/${child}`;
      const acl = await session.getAcl(path);
      if (acl?.some((a) => a.scheme === "world" && a.perms !== zk.ZK_PERMS.read) !== true) continue;
      const data = await session.getData(path);
      await session.remove(path);
      if (data !== null && child !== "alive") await session.create(path, data, "persistent");
    }
    await grantRollout(
      session,
      config.namespace,
      host,
      { admin, host: zk.digestId(host, password) },
      zk,
    );
  });
}

/**
 * Takes `host`'s write access away (and its rights on the rollout's
 * nodes: `revokeRollout`); false when it had none. Its nodes stay,
 * readable by all: each is re-created by the admin (who holds the host
 * node) with the admin's ACL; the host's \`alive\`, tied to its session, is
 * removed.
 */
export function zooKeeperRevokeHost(config: BackendConfig, host: string): Promise<boolean> {
  return withAdminSession(config, async (session, admin, zk) => {
    const hostPath = `${config.namespace}/${host}`;
    const hadRollout = await revokeRollout(session, config.namespace, host, zk);
    const acl = await session.getAcl(hostPath);
    if (!acl?.some((a) => isHostEntry(a, host))) return hadRollout;
    const locked = [
      { perms: zk.ZK_PERMS.read, scheme: "world", id: "anyone" },
      { perms: zk.ZK_PERMS.all, scheme: "digest", id: admin },
    ];
    await session.setAcl(hostPath, locked);
    session.setCreateAcl(locked);
    for (const child of (await session.getChildren(hostPath)) ?? []) {
      const path = `${hostPath}/${child}`;
      const data = await session.getData(path);
      await session.remove(path);
      if (data !== null && child !== "alive") await session.create(path, data, "persistent");
    }
    return true;
  });
}

/** Hosts whose node grants their own digest identity write access. */
export function zooKeeperGrantedHosts(config: BackendConfig): Promise<string[]> {
  return withAdminSession(config, async (session, _admin, zk) => {
    const granted: string[] = [];
    for (const host of ((await session.getChildren(config.namespace)) ?? []).sort()) {
      const acl = (await session.getAcl(`${config.namespace}/${host}`)) ?? [];
      if (
        acl.some(
          (a) =>
            a.scheme === "digest" &&
            a.id.startsWith(`${host}:`) &&
            (a.perms & zk.ZK_PERMS.write) !== 0,
        )
      ) {
        granted.push(host);
      }
    }
    return granted;
  });
}
