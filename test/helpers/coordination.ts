/**
 * Coordination tests over every backend: a real server per backend, and a
 * holder process that takes a lease and can be killed, so that its lease
 * expires the way a crashed host's does.
 */

import path from "node:path";

import type { BackendConfig } from "../../src/config/index.js";
import type { BackendKind } from "../../src/fleet/index.js";
import { REPO_ROOT } from "./cli.js";
import { startEtcd } from "./etcd.js";
import { startProcess, waitFor, type ManagedProcess } from "./process.js";
import { startZooKeeper } from "./zookeeper.js";

export interface CoordinationServer {
  config: BackendConfig;
  stop(): Promise<void>;
}

export interface CoordinationBackend {
  kind: BackendKind;
  /** Whether a watch replays every change after its revision (etcd), or only the latest state (ZooKeeper). */
  replaysHistory: boolean;
  start(): Promise<CoordinationServer>;
}

function configFor(endpoint: string): BackendConfig {
  return { endpoints: [endpoint], namespace: "/ogygia-test", timeoutSeconds: 5 };
}

export const COORDINATION_BACKENDS: CoordinationBackend[] = [
  {
    kind: "etcd",
    replaysHistory: true,
    async start() {
      const server = await startEtcd();
      return { config: configFor(server.endpoint), stop: () => server.stop() };
    },
  },
  {
    kind: "zookeeper",
    replaysHistory: false,
    async start() {
      const server = await startZooKeeper();
      return { config: configFor(server.endpoint), stop: () => server.stop() };
    },
  },
];

/** The built module the holder process imports (`npm run build`). */
const COORDINATION_MODULE = path.join(REPO_ROOT, "dist/src/fleet/index.js");

const HOLDER_SCRIPT = `
const o = JSON.parse(process.env.OGYGIA_TEST_HOLDER);
const { openCoordinator } = await import(o.module);
const coordinator = await openCoordinator(o.kind, o.config);
const lease = await coordinator.grantLease({ ttlMs: o.ttlMs });
let version;
if (o.lock) {
  const lock = await coordinator.acquireLock(o.key, { holder: o.holder, lease, waitMs: 30000 });
  version = lock.version;
} else {
  const result = await coordinator.compareAndSet(o.key, "absent", new TextEncoder().encode(o.holder), { lease });
  if (!result.won) throw new Error("the key exists");
  version = result.version;
}
process.stdout.write("ready " + version + "\\n");
setInterval(() => undefined, 1 << 30);
`;

export interface Holder {
  /** The version of the key (or lock) the holder created. */
  version: bigint;
  /** Kills the process (SIGKILL): nothing revokes its lease, which expires. */
  kill(): Promise<void>;
}

/**
 * Starts a process that grants a lease of `ttlMs` and creates `key` with it
 * (`lock`: takes the lock `key` as `holder`), then waits to be killed.
 */
export async function startHolder(options: {
  kind: BackendKind;
  config: BackendConfig;
  key: string;
  holder: string;
  ttlMs: number;
  lock: boolean;
}): Promise<Holder> {
  const proc: ManagedProcess = startProcess(
    process.execPath,
    ["--input-type=module", "-e", HOLDER_SCRIPT],
    {
      env: {
        ...process.env,
        OGYGIA_TEST_HOLDER: JSON.stringify({ ...options, module: COORDINATION_MODULE }),
      },
    },
  );
  try {
    const version = await waitFor(
      `the holder of ${options.key}`,
      () => {
        if (proc.child.exitCode !== null) throw new Error(`holder exited:\n${proc.output()}`);
        const match = /ready (\d+)/.exec(proc.output());
        return match?.[1] === undefined ? undefined : BigInt(match[1]);
      },
      { timeoutMs: 30_000 },
    );
    return { version, kill: () => proc.stop("SIGKILL") };
  } catch (err) {
    await proc.stop("SIGKILL");
    throw err;
  }
}
