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
 * every round is a real change. The agents' own CPU time per rollout (from
 * `/proc`, the programs they run left out) is printed beside it: with 100
 * agents on two cores, it is what the overhead is made of.
 *
 * `BENCH_AGENTS_BASE=PATH` (another build's `dist/bench/lib-rollout-agents.js`)
 * pairs this build's agents with that build's: each round runs one rollout
 * with each (the first alternating from round to round), agents started
 * afresh for each, and the ratios of the two are printed per round.
 */

import { fork, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { openCoordinator, openFleetBackend, type Coordinator } from "../src/fleet/index.js";
import {
  makePlan,
  planKey,
  progressOf,
  readPlan,
  rolloutPrefix,
  type Plan,
} from "../src/rollout/index.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { nixEnv, runNix } from "../test/helpers/nix.js";
import { removeDir, sleep, tempDir, waitFor } from "../test/helpers/process.js";
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
/** Another build's `dist/bench/lib-rollout-agents.js`, whose agents run every other rollout. */
const BASE_AGENTS = process.env.BENCH_AGENTS_BASE;
/** From the agents' start to the plan's write: their first reads done. */
const SETTLE_MS = 2000;
const CLOCK_TICK_MS = 1000 / 100;

/** One build's agents and what they measured. */
interface Build {
  name: string;
  script: string;
  ours: number[][];
  overhead: number[][];
  ourHostMs: number[];
  /** From the previous wave's last confirmation (or the plan's write) to this wave's first start. */
  gates: number[][];
  /** The agents' CPU per rollout: user + system, and each. */
  cpuMs: number[];
  userMs: number[];
  systemMs: number[];
  /** Per host, its agent's log lines with their times: where a host's time goes. */
  trace: Map<string, { at: number; state: string }[]>;
}

interface Agents {
  /** The CPU time the agent processes used so far. */
  cpuMs(): { user: number; system: number };
  stop(): Promise<void>;
}

/** A process's own CPU time (its children left out), user and system, from `/proc/PID/stat`. */
function cpuMsOf(pid: number | undefined): { user: number; system: number } {
  if (pid === undefined) return { user: 0, system: 0 };
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) * CLOCK_TICK_MS, system: Number(fields[12]) * CLOCK_TICK_MS };
}

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
      `${HOSTS} agents in ${groups.length} processes of up to ${AGENTS_PER_PROCESS}` +
        `${BASE_AGENTS ? `, rounds alternating with ${BASE_AGENTS}` : ""}...\n`,
    );
    /** Starts every agent process of `build`; resolves once all run. */
    const startAgents = async (build: Build): Promise<Agents> => {
      const children = await Promise.all(
        groups.map(async (group) => {
          const child = fork(build.script, [], {
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
            const list = build.trace.get(message.host) ?? [];
            list.push({ at: message.at, state: message.state });
            build.trace.set(message.host, list);
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
      const stop = async (): Promise<void> => {
        for (const { child } of children) {
          if (child.connected) child.send({ type: "stop" });
        }
        await Promise.race([
          Promise.all(children.map((c) => c.exited)),
          new Promise((resolve) => setTimeout(resolve, 10_000)),
        ]);
        for (const { child } of children) if (child.exitCode === null) child.kill("SIGKILL");
      };
      stopAgents = stop;
      return {
        cpuMs: () =>
          children.reduce(
            (sum, { child }) => {
              const cpu = cpuMsOf(child.pid);
              return { user: sum.user + cpu.user, system: sum.system + cpu.system };
            },
            { user: 0, system: 0 },
          ),
        stop,
      };
    };
    const operator = await openCoordinator("etcd", config);
    coordinators.push(operator);
    const backend = await openFleetBackend({ etcd: config, zookeeper: undefined });
    if (!backend) throw new Error("no backend");

    const builds: Build[] = [
      { name: "this build", script: path.join(here, "lib-rollout-agents.js") },
    ]
      .concat(BASE_AGENTS ? [{ name: "base", script: path.resolve(BASE_AGENTS) }] : [])
      .map((b) => ({
        ...b,
        ours: [[], [], []],
        overhead: [[], [], []],
        ourHostMs: [],
        gates: [[], [], []],
        cpuMs: [],
        userMs: [],
        systemMs: [],
        trace: new Map(),
      }));
    const base: number[][] = [[], [], []];
    let target = a;
    for (let round = 0; round < ROUNDS; round++) {
      // Each build in turn, the first one alternating from round to round.
      const order = round % 2 === 0 ? builds : [...builds].reverse();
      for (const build of order) {
        const agents = await startAgents(build);
        // The agents' first reads (plan, namespace) done before the plan changes.
        await sleep(SETTLE_MS);
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
        const cpuBefore = agents.cpuMs();
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
            const progress = progressOf(plan, snapshot);
            if (progress.state === "halted") throw new Error("rollout halted");
            return progress.state === "completed" ? progress : undefined;
          },
          { timeoutMs: 600_000, intervalMs: 200 },
        );
        const cpuAfter = agents.cpuMs();
        build.userMs.push(cpuAfter.user - cpuBefore.user);
        build.systemMs.push(cpuAfter.system - cpuBefore.system);
        build.cpuMs.push(cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system);
        await agents.stop();
        for (const h of finished.hosts) {
          build.ourHostMs.push(Date.parse(h.finishedAt ?? "") - Date.parse(h.startedAt ?? ""));
        }
        const waveMs: number[] = [];
        let previousEnd = started;
        finished.waves.forEach((_wave, w) => {
          const inWave = finished.hosts.filter((h) => h.wave === w);
          const firstStart = Math.min(...inWave.map((h) => Date.parse(h.startedAt ?? "")));
          build.gates[w]?.push(firstStart - previousEnd);
          const end = Math.max(...inWave.map((h) => Date.parse(h.finishedAt ?? "")));
          waveMs.push(end - previousEnd);
          build.ours[w]?.push(end - previousEnd);
          previousEnd = end;
        });
        // Baseline: the same commands, wave by wave, same concurrency; back to the
        // system the agents just left, then forth again so that the next rollout
        // starts where it expects.
        const other = target === a ? b : a;
        for (const [w, wave] of plan.waves.entries()) {
          const t0 = Date.now();
          await pool(wave, CONCURRENCY, (h) => activateDirectly(roots.get(h) ?? "", other));
          const direct = Date.now() - t0;
          base[w]?.push(direct);
          build.overhead[w]?.push((waveMs[w] ?? NaN) - direct);
        }
        await pool(hosts, CONCURRENCY, (h) => activateDirectly(roots.get(h) ?? "", target));
        process.stdout.write(
          `round ${round + 1}/${ROUNDS} ${build.name}: overhead ${build.overhead
            .map((o) => formatMs(o.at(-1) ?? NaN))
            .join(" / ")}, agents' CPU ${formatMs(build.cpuMs.at(-1) ?? NaN)} ` +
            `(user ${formatMs(build.userMs.at(-1) ?? NaN)}, system ${formatMs(build.systemMs.at(-1) ?? NaN)})\n`,
        );
      }
    }
    const sizes = [10, 40, 50];
    for (const build of builds) {
      const rows: string[][] = [
        [`${build.name}: wave (hosts)`, "ours: min / median / max", "overhead: min / median / max"],
      ];
      for (let w = 0; w < 3; w++) {
        rows.push([
          `${w + 1} (${sizes[w] ?? "?"})`,
          spread(build.ours[w] ?? []),
          spread(build.overhead[w] ?? []),
        ]);
      }
      rows.push(["target", "", "< 2000 ms per wave"]);
      printTable(rows);
      console.log(
        `${build.name}: agents' CPU per rollout (user + system, from /proc), min / median / max: ${spread(build.cpuMs)} (user ${spread(build.userMs)}; system ${spread(build.systemMs)})`,
      );
      console.log(
        `${build.name}: gate (previous wave's last confirmation to this wave's first start), min / median / max: ${build.gates.map((g, w) => `wave ${w + 1} ${spread(g)}`).join("; ")}`,
      );
      // Time in each state (from its log line to the next one's), over every host and round.
      const phases = new Map<string, number[]>();
      for (const lines of build.trace.values()) {
        lines.forEach((line, i) => {
          const next = lines[i + 1];
          if (!next || line.state === "confirmed") return;
          const list = phases.get(line.state) ?? [];
          list.push(next.at - line.at);
          phases.set(line.state, list);
        });
      }
      console.log(
        `${build.name}: time in each state, min / median / max: ${[...phases].map(([state, ms]) => `${state} ${spread(ms)}`).join("; ")}`,
      );
      console.log(
        `${build.name}: one host, start to finish (published timestamps): ${spread(build.ourHostMs)}`,
      );
    }
    console.log(`baseline (run directly), per wave: ${base.map((w) => spread(w)).join("; ")}`);
    if (builds.length === 2) {
      const [ours, other] = builds as [Build, Build];
      const ratios = (x: number[], y: number[]): string => {
        const r = x.map((v, i) => v / (y[i] ?? NaN)).sort((p, q) => p - q);
        return `${(r[0] ?? NaN).toFixed(2)} / ${median(r).toFixed(2)} / ${(r.at(-1) ?? NaN).toFixed(2)}`;
      };
      console.log(
        `this build / base, per round, min / median / max: agents' CPU ${ratios(ours.cpuMs, other.cpuMs)} ` +
          `(user ${ratios(ours.userMs, other.userMs)}, system ${ratios(ours.systemMs, other.systemMs)}); ` +
          `overhead ${ours.overhead.map((o, w) => `wave ${w + 1} ${ratios(o, other.overhead[w] ?? [])}`).join("; ")}`,
      );
    }
    console.log(
      `run directly: ${Object.entries(directPhases)
        .map(([step, ms]) => `${step} ${spread(ms)}`)
        .join("; ")}; one host ${spread(directHostMs)} (min / median / max)`,
    );
    await backend.close();
  } finally {
    await stopAgents();
    await Promise.all(coordinators.map((c) => c.close()));
    await etcd.stop();
    await removeDir(dir);
  }
}

await main();
