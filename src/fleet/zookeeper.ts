/**
 * The ZooKeeper adapter: the only module that imports `node-zookeeper-client`.
 *
 * That client reports nothing while a server is frozen, and after a session
 * expires every call fails until a new client is made. `ZkSession` therefore
 * puts a deadline on every call, fails calls in flight as soon as the session
 * is lost, and refuses new calls on a lost session, so nothing ever hangs.
 */

import zookeeper from "node-zookeeper-client";

import type { BackendConfig } from "../config/index.js";
import { OgygiaError, errorMessage } from "../core/index.js";
import { DeadlineError, connectError, readError, withDeadline } from "./errors.js";
import { fieldKey, isFleetField, isValidHostSegment } from "./keys.js";
import type { FleetBackend, FleetSnapshot, HostValues } from "./types.js";

/** How many hosts are read at once; ZooKeeper pipelines the reads on one socket. */
const READ_CONCURRENCY = 500;

/** The session ended (expired, closed or disconnected) before the call finished. */
export class ZkSessionLostError extends Error {
  constructor(reason: string) {
    super(`ZooKeeper session lost: ${reason}`);
    this.name = "ZkSessionLostError";
  }
}

/** The client reports failures as `Exception` objects, not `Error`s; keep their code. */
function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (err instanceof zookeeper.Exception) {
    return Object.assign(new Error(err.toString()), { code: err.getCode() });
  }
  return new Error(String(err));
}

function zkCode(err: unknown): number | undefined {
  return err instanceof Error && "code" in err && typeof err.code === "number"
    ? err.code
    : undefined;
}

function isNoNode(err: unknown): boolean {
  return zkCode(err) === zookeeper.Exception.NO_NODE;
}

/** A ZooKeeper connection with deadlines on every call. */
export class ZkSession {
  private readonly client: zookeeper.Client;
  private readonly timeoutMs: number;
  private lost: string | undefined;
  private readonly pending = new Set<(err: Error) => void>();

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
  static async connect(endpoints: readonly string[], timeoutMs: number): Promise<ZkSession> {
    const client = zookeeper.createClient(endpoints.join(","), {
      sessionTimeout: Math.max(timeoutMs, 2000),
      spinDelay: 200,
      retries: 0,
    });
    const connected = new Promise<void>((resolve) => {
      client.once("connected", () => {
        resolve();
      });
    });
    client.connect();
    try {
      await withDeadline(connected, timeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return new ZkSession(client, timeoutMs);
  }

  private fail(reason: string): void {
    this.lost ??= reason;
    const error = new ZkSessionLostError(reason);
    for (const reject of this.pending) reject(error);
    this.pending.clear();
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

  /** Children of `path`, or null when the node does not exist. */
  async getChildren(path: string): Promise<string[] | null> {
    try {
      return await this.call<string[]>((done) => {
        this.client.getChildren(path, (err, children) => {
          done(err, children);
        });
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  /** Data of `path`, or null when the node does not exist. */
  async getData(path: string): Promise<Buffer | null> {
    try {
      return await this.call<Buffer>((done) => {
        this.client.getData(path, (err, data) => {
          // A node created without data reads as null (the typings say otherwise).
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
          done(err, data ?? Buffer.alloc(0));
        });
      });
    } catch (err) {
      if (isNoNode(err)) return null;
      throw err;
    }
  }

  close(): void {
    this.fail("closed");
    this.client.close();
  }
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

function isConnectionFailure(err: unknown): boolean {
  if (err instanceof DeadlineError || err instanceof ZkSessionLostError) return true;
  const code = zkCode(err);
  return (
    code === zookeeper.Exception.CONNECTION_LOSS || code === zookeeper.Exception.SESSION_EXPIRED
  );
}

class ZooKeeperBackend implements FleetBackend {
  readonly kind = "zookeeper" as const;
  readonly config: BackendConfig;
  private session: ZkSession | undefined;

  constructor(config: BackendConfig) {
    this.config = config;
  }

  async readHosts(): Promise<FleetSnapshot> {
    const timeoutMs = this.config.timeoutSeconds * 1000;
    try {
      return await withDeadline(this.read(timeoutMs), timeoutMs);
    } catch (err) {
      if (err instanceof OgygiaError) throw err;
      if (isConnectionFailure(err)) throw connectError("zookeeper", this.config, err);
      throw readError("zookeeper", this.config, new Error(errorMessage(err)));
    }
  }

  private async read(timeoutMs: number): Promise<FleetSnapshot> {
    this.session ??= await ZkSession.connect(this.config.endpoints, timeoutMs);
    const session = this.session;
    const { namespace } = this.config;
    const children = (await session.getChildren(namespace)) ?? [];
    const hosts: FleetSnapshot["hosts"] = new Map();
    let strayKeys = 0;
    // List each host's children first and read only the fields that exist:
    // a read of a missing node costs the client an exception with a stack trace.
    await forEachLimit(children.sort(), READ_CONCURRENCY, async (host) => {
      if (!isValidHostSegment(host)) {
        strayKeys += 1;
        return;
      }
      const values: HostValues = new Map();
      hosts.set(host, values);
      const fields = (await session.getChildren(`${namespace}/${host}`)) ?? [];
      await Promise.all(
        fields.map(async (field) => {
          if (!isFleetField(field)) {
            strayKeys += 1;
            return;
          }
          const data = await session.getData(fieldKey(namespace, host, field));
          if (data !== null) values.set(field, data);
        }),
      );
    });
    return { hosts, strayKeys };
  }

  close(): Promise<void> {
    this.session?.close();
    this.session = undefined;
    return Promise.resolve();
  }
}

/** Creates a ZooKeeper backend; it connects on the first request. */
export function openZooKeeper(config: BackendConfig): FleetBackend {
  return new ZooKeeperBackend(config);
}
