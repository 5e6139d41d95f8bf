/**
 * Every registered fleet backend as the shared integration suites see it: a
 * real server started on 127.0.0.1, with keys to seed and read. A backend
 * added to `src/fleet`'s registry needs one entry in `STARTERS` (the type
 * checker asks for it); the suites then run against it too.
 */

import { BACKENDS, type BackendKind } from "../../src/fleet/index.js";
import { startEtcd, type EtcdServer } from "./etcd.js";
import type { ServerControl } from "./process.js";
import { startZooKeeper, type ZooKeeperServer } from "./zookeeper.js";

/** The helper's own server object, for tests of one backend's specifics. */
export type NativeServer =
  { kind: "etcd"; etcd: EtcdServer } | { kind: "zookeeper"; zk: ZooKeeperServer };

/** A running backend server. */
export interface FleetServer extends ServerControl {
  /** How a configuration names it in `endpoints`. */
  endpoint: string;
  /** Writes raw values at full keys (`<namespace>/<host>/<field>`). */
  put(entries: Iterable<[key: string, value: string | Buffer]>): Promise<void>;
  /** A key's value as UTF-8 text, or null when the key does not exist. */
  get(key: string): Promise<string | null>;
  /**
   * An identifier that changes whenever the key is written (etcd's
   * mod_revision, ZooKeeper's mzxid); undefined when it does not exist.
   */
  version(key: string): Promise<string | undefined>;
  /**
   * What ties the key to a publisher's liveness (etcd: its lease; ZooKeeper:
   * the session owning the ephemeral node), or null for a key that outlives
   * its writer or does not exist.
   */
  liveness(key: string): Promise<string | null>;
  native: NativeServer;
}

/** One backend under test: its registry entry, how to start it, what it can hold. */
export interface FleetHarness {
  kind: BackendKind;
  /** The name the CLI's messages use. */
  label: string;
  start(): Promise<FleetServer>;
  /** The endpoint of a server that would listen on 127.0.0.1:`port`. */
  endpointAt(port: number): string;
  /** A value size the server stores that is far over the CLI's 256-byte limit. */
  largeValueBytes: number;
  /** Whether key names may hold control characters (ZooKeeper refuses them). */
  controlCharactersInKeys: boolean;
  /** Whether endpoints are URLs, which may carry credentials. */
  urlEndpoints: boolean;
}

type Starter = Omit<FleetHarness, "kind" | "label">;

async function etcdFleet(): Promise<FleetServer> {
  const etcd = await startEtcd();
  return {
    ...etcd,
    async put(entries) {
      const list = [...entries];
      for (let i = 0; i < list.length; i += 500) {
        await Promise.all(
          list.slice(i, i + 500).map(([key, value]) => etcd.client.put(key, value)),
        );
      }
    },
    get: (key) => etcd.client.get(key),
    async version(key) {
      return (await etcd.client.getKeyValue(key))?.modRevision.toString();
    },
    async liveness(key) {
      const lease = (await etcd.client.getKeyValue(key))?.lease;
      return lease === undefined || lease === 0n ? null : lease.toString();
    },
    native: { kind: "etcd", etcd },
  };
}

async function zooKeeperFleet(): Promise<FleetServer> {
  const zk = await startZooKeeper();
  return {
    ...zk,
    put: (entries) => zk.putMany(entries),
    get: async (key) => (await zk.get(key))?.toString("utf8") ?? null,
    version: (key) => zk.modifiedZxid(key),
    async liveness(key) {
      const owner = await zk.ephemeralOwner(key);
      return owner === null || /^0+$/.test(owner) ? null : owner;
    },
    native: { kind: "zookeeper", zk },
  };
}

const STARTERS: Record<BackendKind, Starter> = {
  etcd: {
    start: etcdFleet,
    endpointAt: (port) => `http://127.0.0.1:${port}`,
    largeValueBytes: 1024 * 1024,
    controlCharactersInKeys: true,
    urlEndpoints: true,
  },
  zookeeper: {
    start: zooKeeperFleet,
    endpointAt: (port) => `127.0.0.1:${port}`,
    // Under jute.maxbuffer (1 MiB, the whole request included).
    largeValueBytes: 300_000,
    controlCharactersInKeys: false,
    urlEndpoints: false,
  },
};

/** Every registered backend, in the registry's order (the preferred first). */
export const FLEET_HARNESSES: readonly FleetHarness[] = BACKENDS.map((entry) => ({
  kind: entry.kind,
  label: entry.label,
  ...STARTERS[entry.kind],
}));

/** The helper's own server of one backend, for a test of that backend's specifics. */
export function nativeServer<K extends NativeServer["kind"]>(
  server: FleetServer,
  kind: K,
): Extract<NativeServer, { kind: K }> {
  if (server.native.kind !== kind) throw new Error(`not a ${kind} server`);
  return server.native as Extract<NativeServer, { kind: K }>;
}
