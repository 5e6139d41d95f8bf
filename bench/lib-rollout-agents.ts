/**
 * A child process of the rollout benchmark: runs the agents of some of its
 * simulated hosts (`runAgent`, each with its own etcd connections and
 * chroot-store root), as on a real fleet each host runs its own agent.
 * Forked with an IPC channel: the parent sends one `start` message with the
 * hosts, then `stop`; the child sends `ready` once its agents run, and each
 * agent log line's state and time (the parent's trace of where time goes).
 */

import { setMaxListeners } from "node:events";
import path from "node:path";

import { openCoordinator, openFleetBackend, type Coordinator } from "../src/fleet/index.js";
import { planKey, rolloutPrefix, runAgent } from "../src/rollout/index.js";

export interface AgentsStart {
  type: "start";
  endpoint: string;
  namespace: string;
  /** Host name → its root. */
  roots: Record<string, string>;
  nixConfig: string | undefined;
}

export interface AgentLine {
  type: "line";
  host: string;
  at: number;
  state: string;
}

async function runAgents(start: AgentsStart): Promise<void> {
  if (start.nixConfig !== undefined) process.env.NIX_CONFIG = start.nixConfig;
  const config = { endpoints: [start.endpoint], namespace: start.namespace, timeoutSeconds: 10 };
  const hosts = Object.keys(start.roots);
  const stop = new AbortController();
  setMaxListeners(hosts.length * 2 + 10, stop.signal);
  process.on("message", (message: { type?: string }) => {
    if (message.type === "stop") stop.abort();
  });
  // The benchmark ended (or died): no agent outlives it.
  process.once("disconnect", () => {
    stop.abort();
  });
  const coordinators: Coordinator[] = [];
  const agents = await Promise.all(
    hosts.map(async (host) => {
      const coordinator = await openCoordinator("etcd", config);
      coordinators.push(coordinator);
      const backend = await openFleetBackend({ etcd: config, zookeeper: undefined });
      if (!backend) throw new Error("no backend");
      const root = start.roots[host] ?? "";
      return () =>
        runAgent({
          host,
          root,
          namespace: start.namespace,
          coordinator,
          backend,
          settings: {
            stateDir: path.join(root, "var/lib/ogygia/update"),
            substituters: [],
            trustedPublicKeys: [],
            probes: [],
            httpProbes: [],
            checkUnits: false,
            healthDeadlineSeconds: 30,
            activationTimeoutSeconds: 60,
            pollIntervalMs: 1000,
          },
          leaseTtlMs: 10_000,
          reachBackend: async () => {
            await coordinator.get(planKey(rolloutPrefix(start.namespace)));
          },
          log: (line) => {
            // A failure's whole line goes to stderr: the trace keeps its first word only.
            if (/failed|cannot/.test(line)) process.stderr.write(`${host}: ${line}\n`);
            const message: AgentLine = {
              type: "line",
              host,
              at: Date.now(),
              state: line.split(" ")[0] ?? "",
            };
            process.send?.(message);
          },
          signal: stop.signal,
        }).finally(() => backend.close());
    }),
  );
  const running = agents.map((run) => run());
  process.send?.({ type: "ready" });
  await Promise.all(running.map((p) => p.catch(() => undefined)));
  await Promise.all(coordinators.map((c) => c.close()));
  if (process.connected) process.disconnect();
}

process.once("message", (message: AgentsStart) => {
  runAgents(message).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
});
