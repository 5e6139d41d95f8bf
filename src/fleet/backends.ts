/**
 * The names of the registered fleet backends: what each is called in
 * messages, its configuration section and what its liveness is called. Plain
 * data with no imports, so that every module of the folder (errors, types)
 * can name a backend without importing the registry and its adapters.
 */

/**
 * Every backend, the preferred first. `registry.ts` adds how to load each;
 * the configuration builds each one's section from `endpoints` (`url`:
 * http(s) origins; `host:port`: server addresses).
 */
export const BACKEND_NAMES = [
  {
    kind: "etcd",
    label: "etcd",
    section: "[ogygia.etcd]",
    liveness: "etcd lease",
    endpoints: {
      form: "url",
      description: "etcd client URLs, like http://etcd1.internal:2379.",
      example: "http://etcd1.internal:2379",
    },
  },
  {
    kind: "zookeeper",
    label: "ZooKeeper",
    section: "[ogygia.zookeeper]",
    liveness: "ZooKeeper session",
    endpoints: {
      form: "host:port",
      description: "ZooKeeper servers as host:port.",
      example: "zk1.internal:2181",
    },
  },
] as const;

export type BackendKind = (typeof BACKEND_NAMES)[number]["kind"];

/** The human name of a backend, as used in messages. */
export function backendLabel(kind: BackendKind): string {
  const names = BACKEND_NAMES.find((b) => b.kind === kind);
  if (!names) throw new Error(`unregistered fleet backend ${kind}`);
  return names.label;
}
