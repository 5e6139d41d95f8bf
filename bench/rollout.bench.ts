/**
 * A rollout of 100 simulated hosts through three waves (10 %, 50 %, 100 %:
 * 10, 40 and 50 hosts) against real etcd, soak 0, concurrency 10: 100
 * agents (`runAgent`, each with its own etcd connections and its own
 * chroot-store root) applying real test systems (realisation check,
 * `switch-to-configuration test`, profile with `nix-env --set`,
 * `switch-to-configuration boot`). The agents run in child processes
 * (`lib-rollout-agents.ts`), `BENCH_AGENTS_PER_PROCESS` each (default: all
 * in one; on this 2-core machine 10, 25 or 50 a process measured slower, as
 * every process decodes the same fleet changes); `BENCH_CPU_PROF=DIR`
 * writes their CPU profiles.
 *
 * Baseline, alternating with it in the same run: the same per-host commands
 * run directly, wave by wave, with the same concurrency and no
 * orchestration. The figure is each wave's wall time, ours and the
 * baseline's, and the difference: the orchestration's overhead per wave
 * (target: under 2 s). Rounds alternate the target between two systems, so
 * every round is a real change.
 */

import { fork, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { openCoordinator, openFleetBackend, type Coordinator } from "../src/fleet/index.js";
import { makePlan, planKey, readPlan, rolloutPrefix, type Plan } from "../src/rollout/index.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { nixEnv, runNix } from "../test/helpers/nix.js";
import { removeDir, tempDir, waitFor } from "../test/helpers/process.js";
import { buildSystems } from "../test/helpers/rollout.js";
import type { AgentLine, AgentsStart } from "./lib-rollout-agents.js";
import { formatMs, median, printTable } from "./lib-timing.js";

const HOSTS = Number(process.env.BENCH_HOSTS ?? 100);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 10;
/** Agents per child process: 1 as on a fleet; HOSTS (the default) for all in one process. */
const AGENTS_PER_PROCESS = Number(process.env.BENCH_AGENTS_PER_PROCESS ?? HOSTS);
const here = path.dirname(fileURLToPath(import.meta.url));
const NAMESPACE = "/bench-rollout/versions";
const REV = "c".repeat(40);

function run(program: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env, stdio: "ignore" });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${program} ${args.join(" ")} exited ${code ?? "?"}`));
    });
  });
}

/** Per host, its agent's log lines with their times: where a host's time goes. */
const trace = new Map<string, { at: number; state: string }[]>();

/** What an agent does for one host, run directly. */
const directHostMs: number[] = [];
const directPhases = { realise: [] as number[], test: [] as number[], confirm: [] as number[] };

async function activateDirectly(root: string, system: string): Promise<void> {
  const t0 = Date.now();
  const env = { ...nixEnv(), OGYGIA_ROOT: root };
  await run("nix-store", ["--store", root, "--check-validity", system], env);
  const t1 = Date.now();
  await run(path.join(root, system, "bin/switch-to-configuration"), ["test"], env);
  const t2 = Date.now();
  await run(
    "nix-env",
    ["--store", root, "--profile", path.join(root, "nix/var/nix/profiles/system"), "--set", system],
    env,
  );
  await run(path.join(root, system, "bin/switch-to-configuration"), ["boot"], env);
  directHostMs.push(Date.now() - t0);
  directPhases.realise.push(t1 - t0);
  directPhases.test.push(t2 - t1);
  directPhases.confirm.push(Date.now() - t2);
}

async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++];
        if (item !== undefined) await work(item);
      }
    }),
  );
}

function spread(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${formatMs(sorted[0] ?? NaN)} / ${formatMs(median(sorted))} / ${formatMs(sorted.at(-1) ?? NaN)}`;
}

async function main(): Promise<void> {
  const [etcd, dir] = await Promise.all([startEtcd(), tempDir("bench-rollout")]);
  const hosts = Array.from({ length: HOSTS }, (_, i) => `host${String(i).padStart(3, "0")}`);
  const config = { endpoints: [etcd.endpoint], namespace: NAMESPACE, timeoutSeconds: 10 };
  let stopAgents = (): Promise<void> => Promise.resolve();
  const coordinators: Coordinator[] = [];
  try {
    const systems = await buildSystems(dir, {
      a: { revision: REV, config: "" },
      b: { revision: REV, config: "" },
    });
    const [a, b] = [systems.a ?? "", systems.b ?? ""];
    const roots = new Map(hosts.map((h) => [h, path.join(dir, h)]));
    process.stdout.write(`preparing ${HOSTS} host roots...\n`);
    await pool([...roots.values()], 4, async (root) => {
      await mkdir(path.join(root, "run"), { recursive: true });
      await runNix("nix", ["copy", "--no-check-sigs", "--to", root, a, b]);
      await runNix("nix-env", [
        "--store",
        root,
        "--profile",
        path.join(root, "nix/var/nix/profiles/system"),
        "--set",
        a,
      ]);
      await runNix("sh", ["-c", `ln -sfn ${a} "${root}/run/current-system"`]);
    });

    // The agents, each with its own coordinator and fleet reader, in child
    // processes of AGENTS_PER_PROCESS agents each (as on a fleet, where each
    // host runs its own: a spawn blocks only the agents of its process).
    process.env.NIX_CONFIG = nixEnv().NIX_CONFIG;
    const groups: string[][] = [];
    hosts.forEach((host, i) => {
      const g = Math.floor(i / AGENTS_PER_PROCESS);
      (groups[g] ??= []).push(host);
    });
    process.stdout.write(
      `starting ${HOSTS} agents in ${groups.length} processes of up to ${AGENTS_PER_PROCESS}...\n`,
    );
    const children = await Promise.all(
      groups.map(async (group) => {
        const child = fork(path.join(here, "lib-rollout-agents.js"), [], {
          stdio: ["ignore", "inherit", "inherit", "ipc"],
          // BENCH_CPU_PROF=DIR: a CPU profile of each agent process in DIR.
          execArgv: process.env.BENCH_CPU_PROF
            ? ["--cpu-prof", "--cpu-prof-dir", process.env.BENCH_CPU_PROF]
            : [],
        });
        const exited = new Promise<void>((resolve) =>
          child.once("exit", () => {
            resolve();
          }),
        );
        child.on("message", (message: AgentLine | { type: "ready" }) => {
          if (message.type !== "line") return;
          const list = trace.get(message.host) ?? [];
          list.push({ at: message.at, state: message.state });
          trace.set(message.host, list);
        });
        const ready = new Promise<void>((resolve, reject) => {
          child.on("message", (message: { type?: string }) => {
            if (message.type === "ready") resolve();
          });
          child.once("exit", (code) => {
            reject(new Error(`an agent process exited ${code ?? "?"}`));
          });
        });
        const start: AgentsStart = {
          type: "start",
          endpoint: etcd.endpoint,
          namespace: NAMESPACE,
          roots: Object.fromEntries(group.map((h) => [h, roots.get(h) ?? ""])),
          nixConfig: process.env.NIX_CONFIG,
        };
        child.send(start);
        await ready;
        return { child, exited };
      }),
    );
    stopAgents = async () => {
      for (const { child } of children) {
        if (child.connected) child.send({ type: "stop" });
      }
      await Promise.race([
        Promise.all(children.map((c) => c.exited)),
        new Promise((resolve) => setTimeout(resolve, 10_000)),
      ]);
      for (const { child } of children) if (child.exitCode === null) child.kill("SIGKILL");
    };
    const operator = await openCoordinator("etcd", config);
    coordinators.push(operator);
    const backend = await openFleetBackend({ etcd: config, zookeeper: undefined });
    if (!backend) throw new Error("no backend");

    const ours: number[][] = [[], [], []];
    const ourHostMs: number[] = [];
    const base: number[][] = [[], [], []];
    // From the previous wave's last confirmation (or the plan's write) to this wave's first start.
    const gates: number[][] = [[], [], []];
    let target = a;
    for (let round = 0; round < ROUNDS; round++) {
      // Ours: a rollout to the other system.
      target = target === a ? b : a;
      const plan: Plan = makePlan(
        { revision: REV, hosts: Object.fromEntries(hosts.map((h) => [h, target])), tags: {} },
        {
          canaryTag: "canary",
          percentages: [10, 50, 100],
          concurrency: String(CONCURRENCY),
          budget: 1,
          soakSeconds: 0,
          now: new Date(),
        },
      );
      const prefix = rolloutPrefix(NAMESPACE);
      const existing = await readPlan(operator, prefix);
      const started = Date.now();
      await operator.compareAndSet(
        planKey(prefix),
        existing ? { version: existing.version } : "absent",
        Buffer.from(JSON.stringify(plan)),
      );
      const finished = await waitFor(
        "the rollout to complete",
        async () => {
          const snapshot = await backend.readHosts();
          const { progressOf } = await import("../src/rollout/index.js");
          const progress = progressOf(plan, snapshot);
          if (progress.state === "halted") throw new Error("rollout halted");
          return progress.state === "completed" ? progress : undefined;
        },
        { timeoutMs: 600_000, intervalMs: 200 },
      );
      for (const h of finished.hosts) {
        ourHostMs.push(Date.parse(h.finishedAt ?? "") - Date.parse(h.startedAt ?? ""));
      }
      let previousEnd = started;
      finished.waves.forEach((wave, w) => {
        const firstStart = Math.min(
          ...finished.hosts.filter((h) => h.wave === w).map((h) => Date.parse(h.startedAt ?? "")),
        );
        gates[w]?.push(firstStart - previousEnd);
        const end = Math.max(
          ...finished.hosts.filter((h) => h.wave === w).map((h) => Date.parse(h.finishedAt ?? "")),
        );
        ours[w]?.push(end - previousEnd);
        previousEnd = end;
      });
      // Baseline: the same commands, wave by wave, same concurrency; back to the
      // system the agents just left, then forth again so that the next round of
      // ours starts where it expects.
      const other = target === a ? b : a;
      for (const [w, wave] of plan.waves.entries()) {
        const t0 = Date.now();
        await pool(wave, CONCURRENCY, (h) => activateDirectly(roots.get(h) ?? "", other));
        base[w]?.push(Date.now() - t0);
      }
      await pool(hosts, CONCURRENCY, (h) => activateDirectly(roots.get(h) ?? "", target));
      process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
    }
    const rows: string[][] = [
      [
        "wave (hosts)",
        "ours: min / median / max",
        "baseline: min / median / max",
        "overhead (median of rounds)",
      ],
    ];
    const sizes = [10, 40, 50];
    for (let w = 0; w < 3; w++) {
      const o = ours[w] ?? [];
      const bs = base[w] ?? [];
      const diffs = o.map((ms, i) => ms - (bs[i] ?? NaN));
      rows.push([
        `${w + 1} (${sizes[w] ?? "?"})`,
        spread(o),
        spread(bs),
        `${formatMs(median(diffs))} (${formatMs(Math.min(...diffs))} to ${formatMs(Math.max(...diffs))})`,
      ]);
    }
    rows.push(["target", "", "", "< 2000 ms per wave"]);
    printTable(rows);
    console.log(
      `gate (previous wave's last confirmation to this wave's first start), min / median / max: ${gates.map((g, w) => `wave ${w + 1} ${spread(g)}`).join("; ")}`,
    );
    // Time in each state (from its log line to the next one's), over every host and round.
    const phases = new Map<string, number[]>();
    for (const lines of trace.values()) {
      lines.forEach((line, i) => {
        const next = lines[i + 1];
        if (!next || line.state === "confirmed") return;
        const list = phases.get(line.state) ?? [];
        list.push(next.at - line.at);
        phases.set(line.state, list);
      });
    }
    console.log(
      `time in each state, min / median / max: ${[...phases].map(([state, ms]) => `${state} ${spread(ms)}`).join("; ")}`,
    );
    console.log(
      `run directly: ${Object.entries(directPhases)
        .map(([step, ms]) => `${step} ${spread(ms)}`)
        .join("; ")}`,
    );
    console.log(
      `one host, start to finish: ours ${spread(ourHostMs)} (published timestamps), ` +
        `baseline ${spread(directHostMs)} (min / median / max)`,
    );
    await stopAgents();
    await backend.close();
  } finally {
    await stopAgents();
    await Promise.all(coordinators.map((c) => c.close()));
    await etcd.stop();
    await removeDir(dir);
  }
}

await main();
