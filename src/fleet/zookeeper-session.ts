/**
 * The ZooKeeper client wrapper: the only module that imports
 * `node-zookeeper-client`; the fleet backend and coordination go through it.
 *
 * That client reports nothing while a server is frozen, and after a session
 * expires every call fails with CONNECTION_LOSS until a new client is made.
 * `ZkSession` therefore puts a deadline on every call, fails calls in flight
 * as soon as the session is lost (expired, closed or disconnected), and
 * refuses new calls on a lost session, so nothing ever hangs. Whoever needs
 * to go on after a loss makes a new `ZkSession`.
 */

import { createHash } from "node:crypto";
import type net from "node:net";

import zookeeper from "node-zookeeper-client";

import { withDeadline } from "./errors.js";
import { ZkSessionLostError, zkCode } from "./zookeeper-errors.js";

export { ZkSessionLostError, isConnectionFailure, sessionFailure } from "./zookeeper-errors.js";

/** How long a closing session may wait for the server's answer before its socket is dropped. */
const CLOSE_GRACE_MS = 1000;

/** The client reports failures as `Exception` objects, not `Error`s; keep their code. */
function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (err instanceof zookeeper.Exception) {
    return Object.assign(new Error(err.toString()), { code: err.getCode() });
  }
  return new Error(String(err));
}

/** The node (or, for a create, its parent) does not exist. */
export function isNoNode(err: unknown): boolean {
  return zkCode(err) === zookeeper.Exception.NO_NODE;
}

function isNodeExists(err: unknown): boolean {
  return zkCode(err) === zookeeper.Exception.NODE_EXISTS;
}

/** One ACL entry: permissions (ZooKeeper's bits) for an identity (`world:anyone`, `digest:user:hash`). */
export interface ZkAcl {
  perms: number;
  scheme: string;
  id: string;
}

/** ZooKeeper's permission bits. */
export const ZK_PERMS = { read: 1, write: 2, create: 4, delete: 8, admin: 16, all: 31 } as const;

/** The digest identity of `username` with `password`: `user:base64(sha1(user:password))`. */
export function digestId(username: string, password: string): string {
  const hash = createHash("sha1").update(`${username}:${password}`).digest("base64");
  return `${username}:${hash}`;
}

function toLibraryAcl(acl: readonly ZkAcl[]): zookeeper.ACL[] {
  return acl.map((a) => new zookeeper.ACL(a.perms, new zookeeper.Id(a.scheme, a.id)));
}

export interface ZkConnectOptions {
  /** Digest authentication, sent with the handshake (and again on each reconnection). */
  auth?: { username: string; password: string } | undefined;
  /**
   * The session timeout to ask for; the server rounds it into its own
   * [minSessionTimeout, maxSessionTimeout]. Default: max(timeoutMs, 2000).
   */
  sessionTimeoutMs?: number;
}

/** What `exists` reports about a node. */
export interface ZkNodeStat {
  version: number;
  /** The session that owns an ephemeral node; all zeros for a persistent one. */
  ephemeralOwner: Buffer;
  /** The zxid of the node's creation. */
  czxid: bigint;
  /** The zxid of the node's last write. */
  mzxid: bigint;
  /** The zxid of the last creation or deletion of one of its children. */
  pzxid: bigint;
}

function toNodeStat(stat: zookeeper.Stat): ZkNodeStat {
  return {
    version: stat.version,
    ephemeralOwner: stat.ephemeralOwner,
    czxid: stat.czxid.readBigInt64BE(0),
    mzxid: stat.mzxid.readBigInt64BE(0),
    pzxid: stat.pzxid.readBigInt64BE(0),
  };
}

function isBadVersion(err: unknown): boolean {
  return zkCode(err) === zookeeper.Exception.BAD_VERSION;
}

function createMode(mode: "persistent" | "ephemeral"): number {
  return mode === "ephemeral" ? zookeeper.CreateMode.EPHEMERAL : zookeeper.CreateMode.PERSISTENT;
}

/** Stands in for a stat in a failed call's callback, where it is never read. */
const EMPTY_STAT: ZkNodeStat = {
  version: -1,
  ephemeralOwner: Buffer.alloc(8),
  czxid: 0n,
  mzxid: 0n,
  pzxid: 0n,
};

/** The stat of the `index`-th operation of a committed transaction (a `setData`). */
function statOfResult(results: unknown, index: number): ZkNodeStat {
  const result: unknown = Array.isArray(results) ? results[index] : undefined;
  if (typeof result === "object" && result !== null && "stat" in result) {
    return toNodeStat(result.stat as zookeeper.Stat);
  }
  throw new Error("a ZooKeeper transaction answered without the stat of its setData");
}

/** A ZooKeeper connection with deadlines on every call. */
export class ZkSession {
  private readonly client: zookeeper.Client;
  private readonly timeoutMs: number;
  private lost: string | undefined;
  private readonly pending = new Set<(err: Error) => void>();
  private readonly lostListeners: ((reason: string) => void)[] = [];
  /** The ACL of nodes this session creates (without one: open to all, ZooKeeper's default). */
  private acl: zookeeper.ACL[] | undefined;

  private constructor(client: zookeeper.Client, timeoutMs: number) {
    this.client = client;
    this.timeoutMs = timeoutMs;
    client.on("expired", () => {
      this.fail("session expired");
    });
    client.on("disconnected", () => {
      this.fail("disconnected from the server");
    });
  }

  /** Connects to any of `endpoints` within `timeoutMs`, or rejects. */
  static async connect(
    endpoints: readonly string[],
    timeoutMs: number,
    options: ZkConnectOptions = {},
  ): Promise<ZkSession> {
    const client = zookeeper.createClient(endpoints.join(","), {
      sessionTimeout: options.sessionTimeoutMs ?? Math.max(timeoutMs, 2000),
      spinDelay: 200,
      retries: 0,
    });
    const connected = new Promise<void>((resolve) => {
      client.once("connected", () => {
        resolve();
      });
    });
    if (options.auth) {
      client.addAuthInfo(
        "digest",
        Buffer.from(`${options.auth.username}:${options.auth.password}`),
      );
    }
    client.connect();
    try {
      await withDeadline(connected, timeoutMs);
    } catch (err) {
      // Never `close()` a client that has not connected: see `abandonClient`.
      abandonClient(client);
      throw err;
    }
    return new ZkSession(client, timeoutMs);
  }

  /** Sets the ACL of every node this session creates from now on. */
  setCreateAcl(acl: readonly ZkAcl[]): void {
    this.acl = toLibraryAcl(acl);
  }

  /** A node's ACL, or null when it does not exist. */
  async getAcl(path: string): Promise<ZkAcl[] | null> {
    try {
      return await this.call<ZkAcl[]>((done) => {
        this.client.getACL(path, (err, acls) => {
          done(
            err,
            // The typings say `perms`; the library's ACL objects hold `permission`.
            err
              ? []
              : acls.map((a) => ({
                  perms: (a as unknown as { permission: number }).permission,
                  scheme: a.id.scheme,
                  id: a.id.id,
                })),
          );
        });
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /** Replaces a node's ACL; false when the node does not exist. */
  async setAcl(path: string, acl: readonly ZkAcl[]): Promise<boolean> {
    return (await this.setAclAt(path, acl, -1)) === "set";
  }

  /**
   * Changes a node's ACL with compare-and-swap on its ACL version: `change`
   * gets the ACL and returns the new one (or null: leave it), retried when
   * another writer changed it meanwhile. False when the node does not exist.
   */
  async updateAcl(path: string, change: (acl: ZkAcl[]) => ZkAcl[] | null): Promise<boolean> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const read = await this.getAclAndVersion(path);
      if (!read) return false;
      const next = change(read.acl);
      if (next === null) return true;
      const result = await this.setAclAt(path, next, read.aversion);
      if (result !== "moved") return result === "set";
    }
    throw new Error(`the ACL of ${path} kept changing`);
  }

  private async getAclAndVersion(path: string): Promise<{ acl: ZkAcl[]; aversion: number } | null> {
    try {
      return await this.call<{ acl: ZkAcl[]; aversion: number }>((done) => {
        this.client.getACL(path, (err, acls, stat) => {
          done(
            err,
            err
              ? { acl: [], aversion: -1 }
              : {
                  acl: acls.map((a) => ({
                    perms: (a as unknown as { permission: number }).permission,
                    scheme: a.id.scheme,
                    id: a.id.id,
                  })),
                  aversion: stat.aversion,
                },
          );
        });
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  private async setAclAt(
    path: string,
    acl: readonly ZkAcl[],
    aversion: number,
  ): Promise<"set" | "gone" | "moved"> {
    try {
      await this.call<unknown>((done) => {
        this.client.setACL(path, toLibraryAcl(acl), aversion, (err) => {
          done(err, undefined);
        });
      });
      return "set";
    } catch (err) {
      if (isNoNode(err)) return "gone";
      if (isBadVersion(err)) return "moved";
      throw err;
    }
  }

  /** True once the session is lost; every call then fails at once. */
  get isLost(): boolean {
    return this.lost !== undefined;
  }

  /** The session's id, as ZooKeeper records it in an ephemeral node's owner. */
  get sessionId(): Buffer {
    return this.client.getSessionId();
  }

  /** The session timeout the server granted, in milliseconds. */
  get sessionTimeoutMs(): number {
    return this.client.getSessionTimeout();
  }

  /** Calls `listener` once when the session is lost (at once if it already is). */
  onLost(listener: (reason: string) => void): void {
    if (this.lost !== undefined) {
      const reason = this.lost;
      queueMicrotask(() => {
        listener(reason);
      });
      return;
    }
    this.lostListeners.push(listener);
  }

  private fail(reason: string): void {
    if (this.lost !== undefined) return;
    this.lost = reason;
    const error = new ZkSessionLostError(reason);
    for (const reject of this.pending) reject(error);
    this.pending.clear();
    for (const listener of this.lostListeners.splice(0)) listener(reason);
  }

  private call<T>(start: (done: (err: unknown, value: T) => void) => void): Promise<T> {
    if (this.lost !== undefined) return Promise.reject(new ZkSessionLostError(this.lost));
    const result = new Promise<T>((resolve, reject) => {
      const onLost = (err: Error): void => {
        reject(err);
      };
      this.pending.add(onLost);
      start((err, value) => {
        this.pending.delete(onLost);
        if (err) reject(toError(err));
        else resolve(value);
      });
    });
    return withDeadline(result, this.timeoutMs);
  }

  /**
   * Children of `path`, or null when the node does not exist. With `watcher`,
   * it is called once when the children change or the node is deleted (pass
   * the same function each time: the client keeps one per path).
   */
  async getChildren(path: string, watcher?: () => void): Promise<string[] | null> {
    try {
      return await this.call<string[]>((done) => {
        if (watcher) {
          this.client.getChildren(path, watcher, (err, children) => {
            done(err, children);
          });
        } else {
          this.client.getChildren(path, (err, children) => {
            done(err, children);
          });
        }
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /**
   * Data of `path`, or null when the node does not exist. With `watcher`, it
   * is called once when the data changes or the node is deleted.
   */
  async getData(path: string, watcher?: () => void): Promise<Buffer | null> {
    try {
      return await this.call<Buffer>((done) => {
        // A node created without data reads as null (the typings say otherwise).
        const callback = (err: unknown, data: Buffer | null): void => {
          done(err, data ?? Buffer.alloc(0));
        };
        if (watcher) this.client.getData(path, watcher, callback);
        else this.client.getData(path, callback);
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /**
   * The node's stat, or null when it does not exist. With `watcher`, it is
   * called once when the node is created, changed or deleted.
   */
  exists(path: string, watcher?: () => void): Promise<ZkNodeStat | null> {
    return this.call<ZkNodeStat | null>((done) => {
      // `exists` answers null (not NO_NODE) for a missing node (the typings say otherwise).
      const callback = (err: unknown, stat: zookeeper.Stat | null): void => {
        done(err, stat ? toNodeStat(stat) : null);
      };
      if (watcher) this.client.exists(path, watcher, callback);
      else this.client.exists(path, callback);
    });
  }

  /** Creates a node; false when it already exists. The parent must exist. */
  async create(path: string, data: Buffer, mode: "persistent" | "ephemeral"): Promise<boolean> {
    const flag = createMode(mode);
    try {
      await this.call<string>((done) => {
        const callback = (err: unknown, created: string): void => {
          done(err, created);
        };
        if (this.acl) this.client.create(path, data, this.acl, flag, callback);
        else this.client.create(path, data, flag, callback);
      });
      return true;
    } catch (err) {
      if (isNodeExists(err)) return false;
      throw err;
    }
  }

  /** Replaces a node's data; false when the node does not exist. */
  async setData(path: string, data: Buffer): Promise<boolean> {
    try {
      await this.call<unknown>((done) => {
        this.client.setData(path, data, -1, (err) => {
          done(err, undefined);
        });
      });
      return true;
    } catch (err) {
      if (isNoNode(err)) return false;
      throw err;
    }
  }

  /** Deletes a node (at `version`, or any); false when it does not exist. */
  async remove(path: string, version = -1): Promise<boolean> {
    try {
      await this.call<unknown>((done) => {
        this.client.remove(path, version, (err) => {
          done(err, undefined);
        });
      });
      return true;
    } catch (err) {
      if (isNoNode(err)) return false;
      throw err;
    }
  }

  /**
   * Data and stat of `path`, or null when the node does not exist. With
   * `watcher`, it is called once when the data changes or the node is deleted.
   */
  async getWithStat(
    path: string,
    watcher?: () => void,
  ): Promise<{ data: Buffer; stat: ZkNodeStat } | null> {
    try {
      return await this.call<{ data: Buffer; stat: ZkNodeStat }>((done) => {
        const callback = (err: unknown, data: Buffer | null, stat: zookeeper.Stat): void => {
          done(
            err,
            err
              ? { data: Buffer.alloc(0), stat: EMPTY_STAT }
              : { data: data ?? Buffer.alloc(0), stat: toNodeStat(stat) },
          );
        };
        if (watcher) this.client.getData(path, watcher, callback);
        else this.client.getData(path, callback);
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /**
   * Creates a node (with the create ACL, as `create`) and returns its stat,
   * in one transaction (a create and a `setData` at version 0), so that the
   * stat is the creation's own; null when the node exists. The parent must exist.
   */
  async createWithStat(
    path: string,
    data: Buffer,
    mode: "persistent" | "ephemeral",
  ): Promise<ZkNodeStat | null> {
    try {
      return await this.call<ZkNodeStat>((done) => {
        const transaction = this.client.transaction();
        if (this.acl) transaction.create(path, data, this.acl, createMode(mode));
        else transaction.create(path, data, createMode(mode));
        transaction.setData(path, data, 0).commit((err, results: unknown) => {
          if (err) {
            done(err, EMPTY_STAT);
            return;
          }
          try {
            done(null, statOfResult(results, 1));
          } catch (resultErr) {
            done(resultErr, EMPTY_STAT);
          }
        });
      });
    } catch (err) {
      if (isNodeExists(err)) return null;
      throw err;
    }
  }

  /**
   * One `multi`: each node created (persistent; its parent must exist), set
   * at its data version, or removed at its data version, all or none. The
   * zxid of the write, or null when a node was not as expected (created
   * meanwhile, at another version, or gone). At least one operation.
   */
  async multiAt(
    ops: readonly (
      | { type: "create"; path: string; data: Buffer }
      | { type: "set"; path: string; data: Buffer; version: number }
      | { type: "remove"; path: string; version: number }
    )[],
  ): Promise<bigint | null> {
    // Each create is followed by a setData at version 0, as in
    // `createWithStat`, so that a stat (and the zxid) comes back; the
    // index of the results that carry one.
    const withStat: number[] = [];
    let index = 0;
    const transaction = this.client.transaction();
    for (const op of ops) {
      if (op.type === "create") {
        if (this.acl)
          transaction.create(op.path, op.data, this.acl, zookeeper.CreateMode.PERSISTENT);
        else transaction.create(op.path, op.data, zookeeper.CreateMode.PERSISTENT);
        transaction.setData(op.path, op.data, 0);
        withStat.push(index + 1);
        index += 2;
      } else if (op.type === "set") {
        transaction.setData(op.path, op.data, op.version);
        withStat.push(index);
        index += 1;
      } else {
        transaction.remove(op.path, op.version);
        index += 1;
      }
    }
    try {
      return await this.call<bigint>((done) => {
        transaction.commit((err, results: unknown) => {
          if (err) {
            done(err, 0n);
            return;
          }
          try {
            const at = withStat[0];
            // A multi of removes only: its zxid is not in its results.
            done(null, at === undefined ? 0n : statOfResult(results, at).mzxid);
          } catch (resultErr) {
            done(resultErr, 0n);
          }
        });
      });
    } catch (err) {
      if (isNoNode(err) || isBadVersion(err) || isNodeExists(err)) return null;
      throw err;
    }
  }

  /** Replaces a node's data if it is at `version`: its new stat, or null (other version, or gone). */
  async setDataAt(path: string, data: Buffer, version: number): Promise<ZkNodeStat | null> {
    try {
      return await this.call<ZkNodeStat>((done) => {
        this.client.setData(path, data, version, (err, stat) => {
          done(err, err ? EMPTY_STAT : toNodeStat(stat));
        });
      });
    } catch (err) {
      if (isNoNode(err) || isBadVersion(err)) return null;
      throw err;
    }
  }

  /** Deletes a node if it is at `version`; false when it is not (other version, or gone). */
  async removeAt(path: string, version: number): Promise<boolean> {
    try {
      return await this.remove(path, version);
    } catch (err) {
      if (isBadVersion(err)) return false;
      throw err;
    }
  }

  /**
   * Creates `path` and any missing parents as persistent nodes. Nothing is
   * created when `path` exists: ZooKeeper checks the right to create before
   * existence, so re-creating parents the caller may not write would fail.
   */
  async mkdirp(path: string): Promise<void> {
    if ((await this.exists(path)) !== null) return;
    await this.call<string>((done) => {
      const callback = (err: unknown, created: string): void => {
        done(err, created);
      };
      if (this.acl) this.client.mkdirp(path, this.acl, callback);
      else this.client.mkdirp(path, callback);
    });
  }

  /** Closes the session without waiting; the server drops its ephemeral nodes when it hears. */
  close(): void {
    this.fail("closed");
    closeClient(this.client);
  }

  /**
   * Closes the session and waits (up to the call deadline) until the server
   * has confirmed it, so that its ephemeral nodes are gone on return.
   */
  async closeAndWait(): Promise<void> {
    const wasLost = this.lost !== undefined;
    const confirmed = new Promise<void>((resolve) => {
      this.client.once("disconnected", () => {
        resolve();
      });
    });
    this.fail("closed");
    if (!isConnected(this.client)) {
      abandonClient(this.client);
      return;
    }
    this.client.close();
    if (!wasLost) await withDeadline(confirmed, this.timeoutMs).catch(() => undefined);
    dropSocketLater(this.client, 0);
  }
}

/**
 * Closes a client, and drops its socket if the server has not answered the
 * close within a grace period: a frozen server never does, and the client
 * would keep the socket (and the process) alive waiting for it.
 */
function closeClient(client: zookeeper.Client): void {
  if (!isConnected(client)) {
    // Disconnected and reconnecting on its own: as good as never connected.
    abandonClient(client);
    return;
  }
  client.close();
  dropSocketLater(client, CLOSE_GRACE_MS);
}

/** Whether the client holds a connection now (not connecting, closing or lost). */
function isConnected(client: zookeeper.Client): boolean {
  const state = (client as unknown as { connectionManager?: { state?: number } }).connectionManager
    ?.state;
  return state === CONNECTION_CONNECTED || state === CONNECTION_CONNECTED_READ_ONLY;
}

/** The parts of the client's connection manager that `abandonClient` touches (not in the typings). */
interface ConnectionManagerInternals {
  socket?: net.Socket;
  connectTimeoutHandler?: NodeJS.Timeout;
  connect: () => void;
  onSocketConnected: () => void;
  setState: (state: number) => void;
}

/** The connection manager's CLOSING state: a socket that closes then is not reconnected. */
const CONNECTION_CLOSING = -1;
const CONNECTION_CONNECTED = 2;
const CONNECTION_CONNECTED_READ_ONLY = 3;

/**
 * Gives up a client that never connected. `close()` would queue a
 * close-session request on it and switch it to CLOSING while its handshake
 * is still in flight (or about to be, once a server accepts the socket): the
 * server's handshake answer is then read as the answer to a request, and
 * the client throws "Unknown code" from a socket handler, which kills the
 * process. Instead: mark it closing without queueing anything, never let it
 * connect again, and destroy its socket, so nothing the server sends is read.
 */
function abandonClient(client: zookeeper.Client): void {
  const internals = client as unknown as { connectionManager?: ConnectionManagerInternals };
  const manager = internals.connectionManager;
  if (!manager) {
    client.close();
    dropSocketLater(client, 0);
    return;
  }
  manager.connect = () => undefined;
  // A socket opened by a connection attempt already under way.
  manager.onSocketConnected = function (this: ConnectionManagerInternals) {
    this.socket?.destroy();
  };
  manager.setState(CONNECTION_CLOSING);
  clearTimeout(manager.connectTimeoutHandler);
  manager.socket?.destroy();
}

function dropSocketLater(client: zookeeper.Client, ms: number): void {
  setTimeout(() => {
    // Not in the typings: the client's connection manager and its socket.
    const internals = client as unknown as { connectionManager?: { socket?: net.Socket } };
    internals.connectionManager?.socket?.destroy();
  }, ms).unref();
}
