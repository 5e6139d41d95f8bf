/**
 * Rollouts end to end, on every registered backend: real test systems
 * built with Nix, a signed file:// cache, host roots as chroot stores, and
 * `ogygia publish` and `ogygia update` as separate processes per host.
 */

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { MAX_REBOOTS_BACK } from "../src/rollout/index.js";
import { runCli } from "./helpers/cli.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { removeDir, tempDir, waitFor, type ManagedProcess } from "./helpers/process.js";
import {
  buildSystems,
  keepAgent,
  makeCache,
  makeHostRoot,
  startAgent,
  startPublisher,
  switchCalls,
  systemConfig,
  readSystemPaths,
  writeRebootScript,
  type SystemSpec,
} from "./helpers/rollout.js";

const REV_A = "a".repeat(40);
const REV_B = "b".repeat(40);

interface HostProgressJson {
  host: string;
  wave: number;
  target: string;
  state: string;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}
interface ProgressJson {
  state: string;
  failures: number;
  waves: { index: number; hosts: string[]; done: boolean }[];
  hosts: HostProgressJson[];
}

let counter = 0;

describe.each(FLEET_HARNESSES)("rollouts with $label", (harness) => {
  let server: FleetServer;
  let dir: string;
  const processes: ManagedProcess[] = [];

  beforeAll(async () => {
    server = await harness.start();
    dir = await tempDir("rollout");
  });
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.stop("SIGKILL")));
  });
  afterAll(async () => {
    await server.stop();
    await removeDir(dir);
  });

  /** A fleet: systems built, cache made, roots running `base`, operator config written. */
  async function fleet(
    hosts: string[],
    systemSpecs: (config: string) => Record<string, SystemSpec>,
    options: {
      healthDeadlineSeconds?: number;
      probes?: string[];
      reboot?: { policy: string; window?: string; command?: string[] };
    } = {},
  ) {
    counter += 1;
    const work = path.join(dir, `f${counter}`);
    await mkdir(work, { recursive: true });
    const namespace = `/rollout-${process.pid}-${counter}/versions`;
    // The key is made first: the systems' configurations name it.
    const keysDir = path.join(work, "keys");
    await mkdir(keysDir);
    const { generateKeys } = await import("./helpers/nix.js");
    const keys = await generateKeys(keysDir, `rollout-${counter}`);
    const config = systemConfig({
      kind: harness.kind,
      endpoint: server.endpoint,
      namespace,
      cacheUrl: `file://${path.join(work, "cache")}`,
      publicKey: keys.publicKey,
      ...options,
    });
    const specs = { base: { revision: REV_A, config }, ...systemSpecs(config) };
    const systems = await buildSystems(work, specs);
    await makeCache(work, systems, specs, keys);
    const roots: Record<string, string> = {};
    await Promise.all(
      hosts.map(async (host) => {
        const root = path.join(work, host);
        roots[host] = root;
        await makeHostRoot(root, systems.base ?? "");
      }),
    );
    const operatorConfig = path.join(work, "operator.toml");
    await writeFile(operatorConfig, config);
    return { work, namespace, systems, roots, operatorConfig };
  }

  async function rollout(configFile: string, args: string[]) {
    const result = await runCli(["rollout", ...args, "--config", configFile, "--json"], {
      env: { OGYGIA_CONFIG: undefined },
    });
    if (result.code !== 0) throw new Error(`rollout ${args.join(" ")} failed:\n${result.stderr}`);
    return JSON.parse(result.stdout) as ProgressJson;
  }

  function startHosts(roots: Record<string, string>, hosts: string[]): void {
    for (const host of hosts) {
      const root = roots[host] ?? "";
      processes.push(startPublisher(host, root), startAgent(host, root));
    }
  }

  async function writeRelease(
    work: string,
    name: string,
    hosts: Record<string, string>,
    tags: Record<string, string[]> = {},
  ): Promise<string> {
    const file = path.join(work, name);
    await writeFile(file, JSON.stringify({ revision: REV_B, hosts, tags }));
    return file;
  }

  it("rolls ten hosts out in three waves, keeping the order, the concurrency and the soak", async () => {
    const hosts = Array.from({ length: 10 }, (_, i) => `h${String(i + 1).padStart(2, "0")}`);
    const f = await fleet(hosts, (config) =>
      Object.fromEntries(hosts.map((h) => [h, { revision: REV_B, config }])),
    );
    const release = await writeRelease(
      f.work,
      "release.json",
      Object.fromEntries(hosts.map((h) => [h, f.systems[h] ?? ""])),
      { h07: ["canary"] },
    );
    const started = await rollout(f.operatorConfig, [
      "start",
      release,
      "--waves",
      "50,100",
      "--concurrency",
      "2",
      "--soak",
      "1",
    ]);
    expect(started.waves.map((w) => w.hosts.length)).toEqual([1, 5, 4]);
    expect(started.waves[0]?.hosts).toEqual(["h07"]);
    // The hosts' processes start after the plan is written (20 processes at once would
    // slow the CLI on a loaded machine; the agents find the plan when they start).
    startHosts(f.roots, hosts);

    const done = await waitFor(
      "the rollout to complete",
      async () => {
        const p = await rollout(f.operatorConfig, ["status"]);
        return p.state === "completed" ? p : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    const times = (h: HostProgressJson) => ({
      start: Date.parse(h.startedAt ?? ""),
      end: Date.parse(h.finishedAt ?? ""),
    });
    // Waves in order, each after the previous one's soak (1 s).
    for (let w = 1; w < done.waves.length; w++) {
      const previous = done.hosts.filter((h) => h.wave === w - 1).map(times);
      const current = done.hosts.filter((h) => h.wave === w).map(times);
      const lastEnd = Math.max(...previous.map((t) => t.end));
      const firstStart = Math.min(...current.map((t) => t.start));
      expect(firstStart).toBeGreaterThanOrEqual(lastEnd + 1000);
    }
    // Never more than two hosts between start and finish at once.
    const events = done.hosts
      .flatMap((h) => [
        { at: times(h).start, d: 1 },
        { at: times(h).end, d: -1 },
      ])
      .sort((a, b) => a.at - b.at || a.d - b.d);
    let running = 0;
    let most = 0;
    for (const e of events) {
      running += e.d;
      most = Math.max(most, running);
    }
    expect(most).toBeLessThanOrEqual(2);
    expect(most).toBeGreaterThanOrEqual(1);
    // Every host runs and boots into its new system; test, then boot, once each.
    for (const host of hosts) {
      const root = f.roots[host] ?? "";
      const target = f.systems[host] ?? "";
      const paths = readSystemPaths(root);
      expect(paths.current).toBe(target);
      expect(paths.nextboot).toBe(target);
      expect(await switchCalls(root)).toEqual([
        [target, "test"],
        [target, "boot"],
      ]);
    }
    // `ogygia status` shows each host's state.
    const status = await runCli(["status", "--json", "--config", f.operatorConfig], {
      env: { OGYGIA_CONFIG: undefined },
    });
    const statusHosts = (
      JSON.parse(status.stdout) as {
        hosts: { host: string; update: { state: string; target: string } | null }[];
      }
    ).hosts;
    for (const host of hosts) {
      expect(statusHosts.find((h) => h.host === host)?.update).toMatchObject({
        state: "confirmed",
        target: f.systems[host],
      });
    }
  }, 180_000);

  it("rolls a failing host back, halts at the budget, never tries the bad path again, and resumes with a fixed release", async () => {
    const hosts = ["bad", "twin", "g1", "g2"];
    const f = await fleet(hosts, (config) => ({
      broken: { revision: REV_B, config, unhealthy: true },
      fixed: { revision: REV_B, config },
      g1: { revision: REV_B, config },
      g2: { revision: REV_B, config },
    }));
    startHosts(f.roots, hosts);
    const broken = f.systems.broken ?? "";
    const release = await writeRelease(
      f.work,
      "release.json",
      { bad: broken, twin: broken, g1: f.systems.g1 ?? "", g2: f.systems.g2 ?? "" },
      { bad: ["canary"] },
    );
    await rollout(f.operatorConfig, ["start", release, "--waves", "100", "--soak", "0"]);
    const halted = await waitFor(
      "the rollout to halt",
      async () => {
        const p = await rollout(f.operatorConfig, ["status"]);
        return p.state === "halted" ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const bad = halted.hosts.find((h) => h.host === "bad");
    expect(bad?.state).toBe("rolled-back");
    expect(bad?.error).toMatch(/unhealthy: probe .* failed/);
    const badRoot = f.roots.bad ?? "";
    expect(readSystemPaths(badRoot).current).toBe(readSystemPaths(badRoot).nextboot);
    expect(readSystemPaths(badRoot).current).not.toBe(broken);
    expect(await switchCalls(badRoot)).toEqual([
      [broken, "test"],
      [readSystemPaths(badRoot).current, "switch"],
    ]);
    // The later wave never started; nobody else tried the bad path.
    for (const host of ["twin", "g1", "g2"]) {
      expect(halted.hosts.find((h) => h.host === host)?.state).toBe("pending");
      expect(await switchCalls(f.roots[host] ?? "")).toEqual([]);
    }
    expect(
      await server.get(
        `${path.posix.dirname(f.namespace)}/rollout/versions/failed/${path.posix.basename(broken)}`,
      ),
    ).toContain('"host":"bad"');

    // `ogygia status` marks the host whose update failed.
    const table = await runCli(["status", "--config", f.operatorConfig], {
      env: { OGYGIA_CONFIG: undefined },
    });
    expect(table.stdout).toMatch(/bad \(update rolled-back\)/);

    // Resume with the fixed path for `bad` only: `twin` keeps the failed path and is skipped.
    const fixed = await writeRelease(f.work, "fixed.json", { bad: f.systems.fixed ?? "" });
    await rollout(f.operatorConfig, ["resume", "--release", fixed]);
    const after = await waitFor(
      "twin to be skipped and the others confirmed",
      async () => {
        const p = await rollout(f.operatorConfig, ["status"]);
        const states = Object.fromEntries(p.hosts.map((h) => [h.host, h.state]));
        return states.bad === "confirmed" &&
          states.twin === "skipped" &&
          states.g1 === "confirmed" &&
          states.g2 === "confirmed"
          ? p
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(after.hosts.find((h) => h.host === "twin")?.error).toMatch(/failed on bad/);
    const skippedTable = await runCli(["status", "--config", f.operatorConfig], {
      env: { OGYGIA_CONFIG: undefined },
    });
    expect(skippedTable.stdout).toMatch(/twin \(update skipped\)/);
    expect(await switchCalls(f.roots.twin ?? "")).toEqual([]);
    expect(readSystemPaths(f.roots.bad ?? "").current).toBe(f.systems.fixed);
    // A fixed path for twin completes the rollout.
    await rollout(f.operatorConfig, [
      "resume",
      "--release",
      await writeRelease(f.work, "fixed2.json", { twin: f.systems.fixed ?? "" }),
    ]);
    await waitFor(
      "the rollout to complete",
      async () =>
        (await rollout(f.operatorConfig, ["status"])).state === "completed" ? true : undefined,
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  }, 180_000);

  it("refuses an unsigned system before activation, and rolls back one that cuts the host off", async () => {
    const hosts = ["u1", "c1"];
    const f = await fleet(hosts, (config) => ({
      unsigned: { revision: REV_B, config, signed: false },
      cutoff: {
        revision: REV_B,
        config: config.replace(
          /endpoints = \[.*\]/,
          `endpoints = [${JSON.stringify(harness.endpointAt(1))}]`,
        ),
      },
    }));
    startHosts(f.roots, hosts);
    const release = await writeRelease(f.work, "release.json", {
      u1: f.systems.unsigned ?? "",
      c1: f.systems.cutoff ?? "",
    });
    await rollout(f.operatorConfig, [
      "start",
      release,
      "--waves",
      "100",
      "--soak",
      "0",
      "--concurrency",
      "2",
      "--budget",
      "2",
    ]);
    const done = await waitFor(
      "both hosts to fail",
      async () => {
        const p = await rollout(f.operatorConfig, ["status"]);
        return p.state === "halted" ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const u1 = done.hosts.find((h) => h.host === "u1");
    expect(u1?.state).toBe("failed");
    expect(u1?.error).toMatch(/not signed by a trusted key/);
    expect(await switchCalls(f.roots.u1 ?? "")).toEqual([]);
    const c1 = done.hosts.find((h) => h.host === "c1");
    expect(c1?.state).toBe("rolled-back");
    expect(c1?.error).toMatch(/fleet store unreachable/);
    const c1Paths = readSystemPaths(f.roots.c1 ?? "");
    expect(c1Paths.current).toBe(f.systems.base);
    expect(c1Paths.nextboot).toBe(f.systems.base);
  }, 120_000);

  it("ends in the old system or the confirmed new one after SIGKILL mid-update and a backend outage", async () => {
    const hosts = ["k1", "o1"];
    const f = await fleet(
      hosts,
      (config) => ({ k1: { revision: REV_B, config }, o1: { revision: REV_B, config } }),
      // The probe holds the check until the test lets it pass.
      { probes: ['test -e "$OGYGIA_ROOT/probe-ok"'], healthDeadlineSeconds: 20 },
    );
    const k1Root = f.roots.k1 ?? "";
    const o1Root = f.roots.o1 ?? "";
    processes.push(startPublisher("k1", k1Root), startPublisher("o1", o1Root));
    const k1Agent = startAgent("k1", k1Root);
    processes.push(k1Agent, startAgent("o1", o1Root));
    const release = await writeRelease(f.work, "release.json", {
      k1: f.systems.k1 ?? "",
      o1: f.systems.o1 ?? "",
    });
    await rollout(f.operatorConfig, [
      "start",
      release,
      "--waves",
      "100",
      "--soak",
      "0",
      "--concurrency",
      "2",
      "--budget",
      "2",
    ]);
    const stateOf = async (root: string) => {
      const { readFile } = await import("node:fs/promises");
      const text = await readFile(
        path.join(root, "var/lib/ogygia/update/state.json"),
        "utf8",
      ).catch(() => "{}");
      return (JSON.parse(text) as { state?: string }).state;
    };
    await waitFor(
      "both hosts checking",
      async () =>
        (await stateOf(k1Root)) === "checking" && (await stateOf(o1Root)) === "checking"
          ? true
          : undefined,
      { timeoutMs: 60_000 },
    );
    // k1: the agent dies while its new system is active but unconfirmed.
    await k1Agent.stop("SIGKILL");
    expect(readSystemPaths(k1Root).current).toBe(f.systems.k1);
    // o1: the backend goes away during its check, and comes back.
    await server.pause();
    await writeFile(path.join(o1Root, "probe-ok"), "");
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await server.resume();
    processes.push(startAgent("k1", k1Root));
    const done = await waitFor(
      "both hosts to finish",
      async () => {
        const p = await rollout(f.operatorConfig, ["status"]);
        const states = p.hosts.map((h) => h.state);
        return states.every((s) => ["confirmed", "rolled-back"].includes(s)) ? p : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const k1 = done.hosts.find((h) => h.host === "k1");
    expect(k1?.state).toBe("rolled-back");
    expect(k1?.error).toMatch(/stopped before the update was confirmed/);
    expect(readSystemPaths(k1Root)).toMatchObject({
      current: f.systems.base,
      nextboot: f.systems.base,
    });
    const o1 = done.hosts.find((h) => h.host === "o1");
    const o1Paths = readSystemPaths(o1Root);
    const expected = o1?.state === "confirmed" ? f.systems.o1 : f.systems.base;
    expect(o1Paths).toMatchObject({ current: expected, nextboot: expected });
  }, 150_000);
  /** "HH:MM-HH:MM" in local time, from `fromHours` to `toHours` hours after now. */
  function windowFromNow(fromHours: number, toHours: number): string {
    const at = (h: number): string => {
      const d = new Date(Date.now() + h * 3_600_000);
      return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    };
    return `${at(fromHours)}-${at(toHours)}`;
  }

  it("reboots into a release whose kernel changes, confirms it after the boot, and rolls an unhealthy one back by a second reboot", async () => {
    const hosts = ["kgood", "kbad", "plain"];
    const rebootScript = await writeRebootScript(dir);
    const f = await fleet(
      hosts,
      (config) => ({
        kgood: { revision: REV_B, config, kernel: "6.6.1" },
        kbad: { revision: REV_B, config, kernel: "6.6.1", unhealthy: true },
        plain: { revision: REV_B, config },
      }),
      {
        reboot: { policy: "window", window: windowFromNow(-1, 1), command: [rebootScript] },
        healthDeadlineSeconds: 3,
      },
    );
    const agents = hosts.map((host) => keepAgent(host, f.roots[host] ?? ""));
    for (const host of hosts) processes.push(startPublisher(host, f.roots[host] ?? ""));
    try {
      const release = await writeRelease(f.work, "release.json", {
        kgood: f.systems.kgood ?? "",
        kbad: f.systems.kbad ?? "",
        plain: f.systems.plain ?? "",
      });
      await rollout(f.operatorConfig, [
        "start",
        release,
        "--waves",
        "100",
        "--soak",
        "0",
        "--concurrency",
        "3",
        "--budget",
        "2",
      ]);
      const done = await waitFor(
        "every host to finish",
        async () => {
          const p = await rollout(f.operatorConfig, ["status"]);
          return p.hosts.every((h) => ["confirmed", "rolled-back"].includes(h.state))
            ? p
            : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 100 },
      );
      const state = (host: string) => done.hosts.find((h) => h.host === host);
      const base = f.systems.base ?? "";

      // kgood: boot entry, reboot, healthy after the boot: confirmed, nothing activated with `test`.
      const kgood = f.systems.kgood ?? "";
      expect(state("kgood")?.state).toBe("confirmed");
      expect(await switchCalls(f.roots.kgood ?? "")).toEqual([
        [kgood, "boot"],
        [kgood, "reboot"],
        [kgood, "boot"],
      ]);
      expect(readSystemPaths(f.roots.kgood ?? "")).toEqual({
        current: kgood,
        booted: kgood,
        nextboot: kgood,
      });

      // kbad: booted into, unhealthy: profile and boot entry back, rebooted into the old system.
      const kbad = f.systems.kbad ?? "";
      expect(state("kbad")?.state).toBe("rolled-back");
      expect(state("kbad")?.error).toMatch(/unhealthy: probe .* failed/);
      expect(await switchCalls(f.roots.kbad ?? "")).toEqual([
        [kbad, "boot"],
        [kbad, "reboot"],
        [base, "boot"],
        [base, "reboot"],
      ]);
      expect(readSystemPaths(f.roots.kbad ?? "")).toEqual({
        current: base,
        booted: base,
        nextboot: base,
      });

      // plain: the same kernel: activated with `test` and confirmed with `boot`, no reboot.
      const plain = f.systems.plain ?? "";
      expect(state("plain")?.state).toBe("confirmed");
      expect(await switchCalls(f.roots.plain ?? "")).toEqual([
        [plain, "test"],
        [plain, "boot"],
      ]);
      expect(readSystemPaths(f.roots.plain ?? "").booted).toBe(base);
      expect(agents.map((a) => a.starts())).toEqual([2, 3, 1]);
    } finally {
      await Promise.all(agents.map((a) => a.stop("SIGKILL")));
    }
  }, 180_000);

  it("stops rebooting back after MAX_REBOOTS_BACK when the bootloader keeps booting the new system", async () => {
    const hosts = ["kstuck"];
    const rebootScript = await writeRebootScript(dir, { stuckBootloader: true });
    const f = await fleet(
      hosts,
      (config) => ({ kstuck: { revision: REV_B, config, kernel: "6.6.1", unhealthy: true } }),
      {
        reboot: { policy: "always", command: [rebootScript] },
        healthDeadlineSeconds: 3,
      },
    );
    const agent = keepAgent("kstuck", f.roots.kstuck ?? "");
    processes.push(startPublisher("kstuck", f.roots.kstuck ?? ""));
    try {
      const release = await writeRelease(f.work, "release.json", {
        kstuck: f.systems.kstuck ?? "",
      });
      await rollout(f.operatorConfig, ["start", release, "--waves", "100", "--soak", "0"]);
      const done = await waitFor(
        "the host to give up",
        async () => {
          const p = await rollout(f.operatorConfig, ["status"]);
          return p.hosts.every((h) => ["failed", "rolled-back", "confirmed"].includes(h.state))
            ? p
            : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 100 },
      );
      const kstuck = f.systems.kstuck ?? "";
      const base = f.systems.base ?? "";
      const host = done.hosts.find((h) => h.host === "kstuck");
      expect(host?.state).toBe("failed");
      expect(host?.error).toContain(
        `still boots ${kstuck} after ${MAX_REBOOTS_BACK} reboots back to ${base}`,
      );
      const back = Array.from({ length: MAX_REBOOTS_BACK }, () => [
        [base, "boot"],
        [kstuck, "reboot"],
      ]).flat();
      expect(await switchCalls(f.roots.kstuck ?? "")).toEqual([
        [kstuck, "boot"],
        [kstuck, "reboot"],
        ...back,
      ]);
      // The boot default is the previous system; what runs is left for the operator.
      expect(readSystemPaths(f.roots.kstuck ?? "")).toEqual({
        current: kstuck,
        booted: kstuck,
        nextboot: base,
      });
      expect(agent.starts()).toBe(1 + 1 + MAX_REBOOTS_BACK);
    } finally {
      await agent.stop("SIGKILL");
    }
  }, 180_000);

  it("waits for the reboot window without holding a concurrency slot", async () => {
    const hosts = ["wait1", "now1"];
    const rebootScript = await writeRebootScript(dir);
    const f = await fleet(
      hosts,
      (config) => ({
        wait1: { revision: REV_B, config, kernel: "6.6.2" },
        now1: { revision: REV_B, config },
      }),
      { reboot: { policy: "window", window: windowFromNow(3, 4), command: [rebootScript] } },
    );
    startHosts(f.roots, hosts);
    const release = await writeRelease(f.work, "release.json", {
      wait1: f.systems.wait1 ?? "",
      now1: f.systems.now1 ?? "",
    });
    await rollout(f.operatorConfig, [
      "start",
      release,
      "--waves",
      "100",
      "--soak",
      "0",
      "--concurrency",
      "1",
    ]);
    // With one slot, now1 finishes only if the waiting host does not hold it.
    const done = await waitFor(
      "wait1 waiting and now1 confirmed",
      async () => {
        const p = await rollout(f.operatorConfig, ["status"]);
        const states = Object.fromEntries(p.hosts.map((h) => [h.host, h.state]));
        return states.wait1 === "waiting-reboot-window" && states.now1 === "confirmed"
          ? p
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(done.state).toBe("running");
    expect(await switchCalls(f.roots.wait1 ?? "")).toEqual([]);
    expect(readSystemPaths(f.roots.wait1 ?? "").current).toBe(f.systems.base);
    const table = await runCli(["rollout", "status", "--config", f.operatorConfig], {
      env: { OGYGIA_CONFIG: undefined },
    });
    expect(table.stdout).toMatch(/waiting-reboot-window/);
  }, 120_000);
});
