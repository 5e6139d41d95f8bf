/**
 * The registered fleet backends: each one's name in messages, its
 * configuration section, and how to load its adapter. Adding a backend is
 * one adapter module and one entry here; every message that names the
 * backends is built from this list, in its order (the first configured
 * backend wins).
 */

import { BACKEND_NAMES, type BackendKind } from "./backends.js";
import type { Coordinator } from "./coordination.js";
import type { BackendConfig, FleetBackend, FleetPublisher, PublisherOptions } from "./types.js";

export { backendLabel, type BackendKind } from "./backends.js";

/** What a backend's adapter module offers, once loaded. */
export interface BackendAdapter {
  open(config: BackendConfig): FleetBackend;
  openPublisher(config: BackendConfig, options: PublisherOptions): FleetPublisher;
}

/** One registered backend. */
export interface BackendEntry {
  /**
   * The stable identifier: the `--json` mode and backend, and the key of its
   * configuration section (`[ogygia.<kind>]`).
   */
  readonly kind: string;
  /** The backend's name in messages. */
  readonly label: string;
  /** Its configuration section, as users write it. */
  readonly section: string;
  /** What ties `alive` to a running publisher, as the help words it. */
  readonly liveness: string;
  /** Imports the adapter, and with it the client library, on first use only. */
  load(): Promise<BackendAdapter>;
  /** Imports the backend's `Coordinator` implementation, on first use only. */
  loadCoordinator(): Promise<(config: BackendConfig) => Coordinator>;
}

type Loaders = Pick<BackendEntry, "load" | "loadCoordinator">;

/** How to load each backend: one entry per kind, which the type checker enforces. */
const LOADERS: Readonly<Record<BackendKind, Loaders>> = {
  etcd: {
    async load() {
      const { openEtcd, openEtcdPublisher } = await import("./etcd.js");
      return { open: openEtcd, openPublisher: openEtcdPublisher };
    },
    async loadCoordinator() {
      return (await import("./etcd-coordination.js")).openEtcdCoordinator;
    },
  },
  zookeeper: {
    async load() {
      const { openZooKeeper, openZooKeeperPublisher } = await import("./zookeeper.js");
      return { open: openZooKeeper, openPublisher: openZooKeeperPublisher };
    },
    async loadCoordinator() {
      return (await import("./zookeeper-coordination.js")).openZooKeeperCoordinator;
    },
  },
};

/** Every backend, the preferred first. */
export const BACKENDS: readonly (BackendEntry & { readonly kind: BackendKind })[] =
  BACKEND_NAMES.map((names) => ({ ...names, ...LOADERS[names.kind] }));

/** The backend sections of a configuration: `kind` → its settings, when configured. */
export type FleetConfig = Partial<Readonly<Record<BackendKind, BackendConfig | undefined>>>;

/** The entry of a backend. */
export function backendEntry(kind: BackendKind): BackendEntry {
  const entry = BACKENDS.find((b) => b.kind === kind);
  if (!entry) throw new Error(`unregistered fleet backend ${kind}`);
  return entry;
}

/**
 * Opens a coordinator on one backend, importing its implementation only now
 * (the clients cost hundreds of milliseconds to load). Connects on first use.
 */
export async function openCoordinator(
  kind: BackendKind,
  config: BackendConfig,
): Promise<Coordinator> {
  const open = await backendEntry(kind).loadCoordinator();
  return open(config);
}

/** The backend a configuration selects (the first registered one it configures), if any. */
export function configuredBackend(
  config: FleetConfig,
): { entry: BackendEntry & { kind: BackendKind }; settings: BackendConfig } | undefined {
  for (const entry of BACKENDS) {
    const settings = config[entry.kind];
    if (settings) return { entry, settings };
  }
  return undefined;
}

/**
 * Every backend's label, section or liveness, for messages: "etcd or
 * ZooKeeper", "etcd and ZooKeeper", "neither etcd nor ZooKeeper" (with more
 * backends: "a, b or c", "none of a, b or c").
 */
export function describeBackends(
  field: "label" | "section" | "liveness",
  conjunction: "or" | "and" | "nor",
): string {
  const items = BACKENDS.map((b) => b[field]);
  if (conjunction === "nor") {
    return items.length === 2
      ? `neither ${items.join(" nor ")}`
      : `none of ${joinList(items, "or")}`;
  }
  return joinList(items, conjunction);
}

/** "etcd wins when both etcd and ZooKeeper are set": which backend is used when several are. */
export function backendPrecedence(): string {
  const [first, ...rest] = BACKENDS.map((b) => b.label);
  return rest.length === 1
    ? `${first ?? ""} wins when both ${first ?? ""} and ${rest.join("")} are set`
    : `the first set of ${describeBackends("label", "and")} wins, in that order`;
}

function joinList(items: readonly string[], conjunction: "or" | "and"): string {
  const last = items.at(-1) ?? "";
  return items.length <= 1 ? last : `${items.slice(0, -1).join(", ")} ${conjunction} ${last}`;
}
