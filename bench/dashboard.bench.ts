/**
 * `ogygia dashboard` with 10,000 hosts in a real etcd, seen in headless
 * Chromium (Debian's, driven by playwright-core).
 *
 * 1. Navigation to the full table rendered (the row count shown and the
 *    first rows drawn), side by side with `ogygia status --json` reading
 *    the same fleet (the terminal's view of it). Target: < 1.5 s.
 * 2. A change to one host's `current` key until the page shows it, side by
 *    side with a bare etcd watch in this process seeing the same put (the
 *    floor: the store's own notification). Target: p99 < 1 s.
 * 3. The server's RSS peak and CPU while 100 hosts change per second, with
 *    100 SSE clients connected, beside the same load with none (the
 *    baseline: what following the fleet costs without browsers).
 */

import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";

import { runCli } from "../test/helpers/cli.js";
import { launchChromium, startDashboard } from "../test/helpers/dashboard.js";
import { startEtcd, type EtcdServer } from "../test/helpers/etcd.js";
import { writeConfig } from "../test/helpers/system-root.js";
import { formatMs, median, percentile, printTable } from "./lib-timing.js";

const HOSTS = Number(process.env.BENCH_HOSTS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const CHANGES = Number(process.env.BENCH_CHANGES ?? 60);
const NAMESPACE = "/bench/versions";
const SSE_CLIENTS = Number(process.env.BENCH_SSE_CLIENTS ?? 100);
const CHANGES_PER_SECOND = 100;
const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 15);

/** A process's resident set (bytes) and CPU time so far (seconds), from /proc. */
function usage(pid: number): { rss: number; cpu: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rss: rssKb * 1024, cpu: ticks / 100 };
}

interface LoadResult {
  rssPeak: number;
  cpuPercent: number;
  /** Change events each SSE client received (min over clients), when there are clients. */
  minEvents: number | null;
}

/**
 * Puts CHANGES_PER_SECOND `current` values for LOAD_SECONDS (bounded), with
 * `clients` SSE clients reading /api/events, sampling the server's usage.
 */
async function underLoad(
  etcd: EtcdServer,
  url: string,
  pid: number,
  clients: number,
  salt: string,
): Promise<LoadResult> {
  const requests: http.ClientRequest[] = [];
  const events: number[] = [];
  await Promise.all(
    Array.from(
      { length: clients },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          events[i] = 0;
          const req = http.get(`${url}/api/events`, (res) => {
            res.setEncoding("utf8");
            let snapshot = false;
            res.on("data", (chunk: string) => {
              if (!snapshot && chunk.includes("event: snapshot")) {
                snapshot = true;
                resolve();
              }
              events[i] = (events[i] ?? 0) + (chunk.match(/^event: change$/gm)?.length ?? 0);
            });
            res.on("error", () => undefined);
          });
          req.on("error", reject);
          requests.push(req);
        }),
    ),
  );
  const start = usage(pid);
  let rssPeak = start.rss;
  const startedAt = performance.now();
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, usage(pid).rss);
  }, 100);
  let n = 0;
  const tickMs = 100;
  const perTick = CHANGES_PER_SECOND / (1000 / tickMs);
  const ticks = (LOAD_SECONDS * 1000) / tickMs;
  for (let t = 0; t < ticks; t++) {
    const due = startedAt + t * tickMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const puts: Promise<void>[] = [];
    for (let k = 0; k < perTick; k++, n++) {
      puts.push(
        etcd.client.put(
          `${NAMESPACE}/host${(n * 37) % HOSTS}.example.com/current`,
          revision(n, salt),
        ),
      );
    }
    await Promise.all(puts);
  }
  // Let the last changes reach the clients.
  await new Promise((r) => setTimeout(r, 1000));
  clearInterval(sampler);
  const end = usage(pid);
  const wallSeconds = (performance.now() - startedAt) / 1000;
  for (const req of requests) req.destroy();
  return {
    rssPeak: Math.max(rssPeak, end.rss),
    cpuPercent: (100 * (end.cpu - start.cpu)) / wallSeconds,
    minEvents: clients === 0 ? null : Math.min(...events),
  };
}

function revision(i: number, salt: string): string {
  return `${salt}${i.toString(16)}`.padEnd(40, "0").slice(0, 40);
}

async function seed(etcd: EtcdServer): Promise<void> {
  const now = new Date().toISOString();
  const puts: Promise<unknown>[] = [];
  for (let i = 0; i < HOSTS; i++) {
    const host = `host${i}.example.com`;
    const values: [string, string][] = [
      ["current", revision(i % 7, "a")],
      ["booted", revision(i % 7, "a")],
      ["nextboot", revision(i % 5, "b")],
      ["reboot_required", i % 9 === 0 ? "true" : "false"],
      ["updated_at", now],
      ["alive", "1"],
    ];
    for (const [field, value] of values) {
      puts.push(etcd.client.put(`${NAMESPACE}/${host}/${field}`, value));
      if (puts.length >= 500) await Promise.all(puts.splice(0));
    }
  }
  await Promise.all(puts);
}

function ratioRow(name: string, ours: number[], base: number[]): string[] {
  const ratios = ours.map((v, i) => v / (base[i] ?? NaN));
  return [
    name,
    formatMs(median(ours)),
    formatMs(median(base)),
    `${Math.min(...ratios).toFixed(2)} / ${median(ratios).toFixed(2)} / ${Math.max(...ratios).toFixed(2)}`,
  ];
}

async function main(): Promise<void> {
  const etcd = await startEtcd();
  const dir = await mkdtemp(path.join(os.tmpdir(), "dashboard-bench-"));
  const browser = await launchChromium();
  try {
    await seed(etcd);
    const config = await writeConfig(
      [
        "[ogygia]",
        'domain = "example.com"',
        "[ogygia.etcd]",
        `endpoints = ["${etcd.endpoint}"]`,
        `namespace = "${NAMESPACE}"`,
        "",
      ].join("\n"),
    );
    const dashboard = await startDashboard({ config, stateDir: dir, root: dir });
    const expected = `${HOSTS + 1} hosts`;

    // 1. Navigation → table rendered, alternating with ogygia status --json.
    const nav: number[] = [];
    const cli: number[] = [];
    for (let round = 0; round < ROUNDS + 1; round++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const started = performance.now();
      await page.goto(dashboard.url);
      await page
        .locator(".shown")
        .getByText(expected, { exact: true })
        .waitFor({ timeout: 60_000 });
      await page.locator(".rows .row").first().waitFor();
      const navMs = performance.now() - started;
      await page.close();
      const status = await runCli(["status", "--json", "--root", dir], {
        env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "bench.example.org" },
      });
      if (status.code !== 0) throw new Error(`ogygia status failed: ${status.stderr}`);
      // The first round warms the server and the page cache.
      if (round === 0) continue;
      nav.push(navMs);
      cli.push(status.durationMs);
    }

    // 2. A change → visible, beside a bare etcd watch of the same key.
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(dashboard.url);
    await page.locator(".shown").getByText(expected, { exact: true }).waitFor({ timeout: 60_000 });
    const visible: number[] = [];
    const watched: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      // host0..host9 sort first: always in view.
      const key = `${NAMESPACE}/host${i % 10}.example.com/current`;
      const value = revision(i, "f");
      let resolveSeen: (at: number) => void = () => undefined;
      const seen = new Promise<number>((resolve) => {
        resolveSeen = resolve;
      });
      const watcher = await etcd.client.watchPuts(key, () => {
        resolveSeen(performance.now());
      });
      const shown = page.waitForFunction(
        (rev) => document.querySelector(`.rev[title="${rev}"]`) !== null,
        value,
        { polling: "raf", timeout: 30_000 },
      );
      const started = performance.now();
      await etcd.client.put(key, value);
      await shown;
      visible.push(performance.now() - started);
      watched.push((await seen) - started);
      watcher.cancel();
    }
    await page.close();

    // 3. Server cost with SSE clients under a steady stream of changes.
    const pid = dashboard.proc.child.pid;
    if (pid === undefined) throw new Error("the dashboard has no pid");
    const idle = await underLoad(etcd, dashboard.url, pid, 0, "d");
    const loaded = await underLoad(etcd, dashboard.url, pid, SSE_CLIENTS, "e");
    await dashboard.stop();

    console.log(
      `${HOSTS} hosts in etcd; ${ROUNDS} alternating rounds (navigation), ${CHANGES} changes`,
    );
    printTable([
      ["measure", "ours (median)", "baseline (median)", "ratio min / median / max"],
      ratioRow("navigation → table vs ogygia status --json", nav, cli),
      ratioRow("change → visible vs bare etcd watch", visible, watched),
    ]);
    printTable([
      ["measure", "p50", "p99", "max", "target"],
      [
        "navigation → table",
        formatMs(percentile(nav, 50)),
        formatMs(percentile(nav, 99)),
        formatMs(Math.max(...nav)),
        "< 1500 ms",
      ],
      [
        "change → visible",
        formatMs(percentile(visible, 50)),
        formatMs(percentile(visible, 99)),
        formatMs(Math.max(...visible)),
        "p99 < 1000 ms",
      ],
    ]);
    const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MiB`;
    console.log(
      `\nserver under ${CHANGES_PER_SECOND} changes/s for ${LOAD_SECONDS} s (${HOSTS} hosts)`,
    );
    printTable([
      ["measure", `${SSE_CLIENTS} SSE clients`, "no client (baseline)", "ratio"],
      [
        "RSS peak",
        mib(loaded.rssPeak),
        mib(idle.rssPeak),
        (loaded.rssPeak / idle.rssPeak).toFixed(2),
      ],
      [
        "CPU (% of one core)",
        `${loaded.cpuPercent.toFixed(0)} %`,
        `${idle.cpuPercent.toFixed(0)} %`,
        (loaded.cpuPercent / idle.cpuPercent).toFixed(2),
      ],
      ["change events per client (min)", String(loaded.minEvents), "-", "-"],
    ]);
  } finally {
    await browser.close();
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
