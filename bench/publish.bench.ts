/**
 * `ogygia publish` cost and speed.
 *
 * 1. Change-to-visible latency: a state link is replaced in a fake root
 *    (timed just before the rename) until a watch on the backend sees the
 *    new value, over CHANGES changes, for etcd and for ZooKeeper. Baseline,
 *    measured in the same run over the same watch: a raw write by a client
 *    already connected, until the watch sees it. The difference is the
 *    publisher's own share: the folder watch, its debounce (100 ms settle,
 *    500 ms at most), reading the states and the write.
 * 2. An idle publisher (default TTL and resync) over IDLE_SECONDS, for each
 *    backend: CPU time from /proc/<pid>/stat and RSS from /proc/<pid>/status.
 */

import { readFile } from "node:fs/promises";

import { connectZkSession, type ZkSession } from "../src/fleet/index.js";
import { startEtcd, type EtcdServer } from "../test/helpers/etcd.js";
import { sleep, waitFor, type ManagedProcess } from "../test/helpers/process.js";
import { startZooKeeper, type ZooKeeperServer } from "../test/helpers/zookeeper.js";
import { formatMs, percentile, printTable } from "./lib-timing.js";
import {
  makeBootRoot,
  publishConfig,
  startPublisher,
  type BootRoot,
} from "../test/helpers/publish.js";

const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
/** Pause between changes, so that one change's debounce never covers the next. */
const GAP_MS = 150;
const HOST = "bench.example.com";
const NAMESPACE = "/bench-publish/versions";
const KEY = `${NAMESPACE}/${HOST}/current`;
const CLOCK_TICKS_PER_SECOND = 100;

function revision(i: number): string {
  return i.toString(16).padStart(8, "0").repeat(5);
}

/** Resolves with the time (performance.now) a watched value first equals what is expected. */
interface ValueWatch {
  /** Arms the watch for `value`; resolves when it is seen. */
  expect(value: string): Promise<number>;
  close(): Promise<void>;
}

async function etcdValueWatch(etcd: EtcdServer): Promise<ValueWatch> {
  let wanted: { value: string; resolve: (at: number) => void } | undefined;
  const watcher = await etcd.client.watchPuts(KEY, (value) => {
    const at = performance.now();
    if (value.toString("utf8") === wanted?.value) {
      wanted.resolve(at);
      wanted = undefined;
    }
  });
  return {
    expect: (value) =>
      new Promise((resolve) => {
        wanted = { value, resolve };
      }),
    close: () => {
      watcher.cancel();
      return Promise.resolve();
    },
  };
}

async function zkValueWatch(
  zk: ZooKeeperServer,
): Promise<{ watch: ValueWatch; session: ZkSession }> {
  const session = await connectZkSession([zk.endpoint], 10_000);
  let wanted: { value: string; resolve: (at: number) => void } | undefined;
  // ZooKeeper watches fire once: read again (setting the watch again) on
  // each. One watcher function, so the client keeps one watch on the path.
  const onWatch = (): void => {
    void check();
  };
  const check = async (): Promise<void> => {
    const data = await session.getData(KEY, onWatch);
    const at = performance.now();
    if (wanted && data?.toString("utf8") === wanted.value) {
      wanted.resolve(at);
      wanted = undefined;
    }
  };
  await check();
  return {
    session,
    watch: {
      expect: (value) =>
        new Promise((resolve) => {
          wanted = { value, resolve };
          void check();
        }),
      close: () => {
        session.close();
        return Promise.resolve();
      },
    },
  };
}

/** Latencies (ms) of CHANGES link changes until the watch sees them. */
async function publisherLatencies(root: BootRoot, watch: ValueWatch): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const value = revision(1000 + i);
    const seen = watch.expect(value);
    const changedAt = await root.switchSystem("current", { revision: value });
    samples.push((await seen) - changedAt);
    await sleep(GAP_MS);
  }
  return samples;
}

/** Latencies (ms) of CHANGES raw writes until the same watch sees them. */
async function rawLatencies(
  write: (value: string) => Promise<unknown>,
  watch: ValueWatch,
): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const value = `raw-${revision(i)}`;
    const seen = watch.expect(value);
    const writtenAt = performance.now();
    await write(value);
    samples.push((await seen) - writtenAt);
    await sleep(20);
  }
  return samples;
}

function latencyRow(what: string, samples: readonly number[]): string[] {
  return [
    what,
    formatMs(percentile(samples, 50)),
    formatMs(percentile(samples, 99)),
    formatMs(Math.max(...samples)),
  ];
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after ") ".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
}

async function waitPublished(check: () => Promise<boolean>, proc: ManagedProcess): Promise<void> {
  await waitFor(
    "the publisher to publish",
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`publisher exited:\n${proc.output()}`);
      return (await check()) ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
}

async function main(): Promise<void> {
  const etcd = await startEtcd();
  const zk = await startZooKeeper();
  const processes: ManagedProcess[] = [];
  const roots: BootRoot[] = [];
  try {
    const makeRoot = async (): Promise<BootRoot> => {
      const root = await makeBootRoot({
        current: { revision: revision(1) },
        booted: { revision: revision(1) },
        nextboot: { revision: revision(2) },
      });
      roots.push(root);
      return root;
    };
    const etcdConfig = await publishConfig({
      backend: "etcd",
      endpoint: etcd.endpoint,
      namespace: NAMESPACE,
      leaseTtlSeconds: 10,
      timeoutSeconds: 10,
    });
    const zkConfig = await publishConfig({
      backend: "zookeeper",
      endpoint: zk.endpoint,
      namespace: NAMESPACE,
      leaseTtlSeconds: 10,
      timeoutSeconds: 10,
    });

    // 1. Latency.
    console.log(`Change-to-visible latency, ${CHANGES} changes each (ms)`);
    const rows: string[][] = [["path", "p50", "p99", "max"]];

    const etcdRoot = await makeRoot();
    const etcdPublisher = startPublisher({
      config: etcdConfig,
      root: etcdRoot.root,
      host: HOST,
      logLevel: "warn",
    });
    processes.push(etcdPublisher);
    await waitPublished(async () => (await etcd.client.get(KEY)) === revision(1), etcdPublisher);
    const etcdWatch = await etcdValueWatch(etcd);
    rows.push(
      latencyRow(
        "etcd: raw put -> watch (baseline)",
        await rawLatencies((v) => etcd.client.put(KEY, v), etcdWatch),
      ),
    );
    rows.push(
      latencyRow(
        "etcd: link change -> watch (ogygia publish)",
        await publisherLatencies(etcdRoot, etcdWatch),
      ),
    );
    await etcdWatch.close();
    await etcdPublisher.stop("SIGTERM");

    const zkRoot = await makeRoot();
    const zkPublisher = startPublisher({
      config: zkConfig,
      root: zkRoot.root,
      host: HOST,
      logLevel: "warn",
    });
    processes.push(zkPublisher);
    await waitPublished(
      async () => (await zk.get(KEY))?.toString("utf8") === revision(1),
      zkPublisher,
    );
    const { watch: zkWatch, session } = await zkValueWatch(zk);
    const writer = await connectZkSession([zk.endpoint], 10_000);
    rows.push(
      latencyRow(
        "ZooKeeper: raw setData -> watch (baseline)",
        await rawLatencies((v) => writer.setData(KEY, Buffer.from(v)), zkWatch),
      ),
    );
    writer.close();
    rows.push(
      latencyRow(
        "ZooKeeper: link change -> watch (ogygia publish)",
        await publisherLatencies(zkRoot, zkWatch),
      ),
    );
    await zkWatch.close();
    session.close();
    await zkPublisher.stop("SIGTERM");
    printTable(rows);

    // 2. Idle cost: one publisher per backend, side by side.
    console.log(
      `\nIdle publisher over ${IDLE_SECONDS} s (lease_ttl_seconds = 10, resync_interval_seconds = 300)`,
    );
    const idle: { name: string; proc: ManagedProcess }[] = [];
    for (const [name, config, check] of [
      [
        "etcd",
        etcdConfig,
        async () => (await etcd.client.get(`${NAMESPACE}/idle.example.com/alive`)) !== null,
      ],
      [
        "ZooKeeper",
        zkConfig,
        async () => (await zk.get(`${NAMESPACE}/idle.example.com/alive`)) !== null,
      ],
    ] as const) {
      const proc = startPublisher({
        config,
        root: (await makeRoot()).root,
        host: "idle.example.com",
        logLevel: "warn",
      });
      processes.push(proc);
      await waitPublished(check, proc);
      idle.push({ name, proc });
    }
    const pids = idle.map(({ proc }) => proc.child.pid ?? 0);
    await sleep(2000); // let start-up settle
    const before = await Promise.all(pids.map(cpuTicks));
    const started = performance.now();
    await sleep(IDLE_SECONDS * 1000);
    const seconds = (performance.now() - started) / 1000;
    const after = await Promise.all(pids.map(cpuTicks));
    const rss = await Promise.all(pids.map(rssKiB));
    printTable([
      ["backend", "CPU time", "CPU share", "RSS"],
      ...idle.map(({ name }, i) => {
        const cpuSeconds = ((after[i] ?? 0) - (before[i] ?? 0)) / CLOCK_TICKS_PER_SECOND;
        return [
          name,
          `${(cpuSeconds * 1000).toFixed(0)} ms`,
          `${((cpuSeconds / seconds) * 100).toFixed(2)} %`,
          `${((rss[i] ?? NaN) / 1024).toFixed(1)} MiB`,
        ];
      }),
    ]);
  } finally {
    await Promise.all(processes.map((p) => p.stop("SIGTERM")));
    await Promise.all(roots.map((r) => r.remove()));
    await etcd.stop();
    await zk.stop();
  }
}

await main();
