/**
 * `ogygia builders` speed, each figure beside its baseline in the same run.
 *
 * 1. Fleet change to machines file: a builder entry is rewritten in etcd
 *    (a new speed factor each round, so the file's line changes) until the
 *    running `ogygia builders --watch` has renamed the new file into place
 *    (seen with fs.watch on its folder). Baseline, the same change: a raw
 *    etcd watch by a client already connected. The target is under
 *    a second; the difference is the daemon's own share (the fleet watch's
 *    50 ms settle, the read of the namespace, the atomic write).
 * 2. A probe: `ogygia builders --check` (read the fleet, probe the one
 *    builder over SSH) against a plain `ssh ... nix-store --version` to the
 *    same sshd, alternating, as ratios.
 */

import { watch } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { OGYGIA_BIN, baseEnv } from "../test/helpers/cli.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { removeDir, sleep, startProcess, tempDir, waitFor } from "../test/helpers/process.js";
import { startSshd } from "../test/helpers/sshd.js";
import { writeConfig } from "../test/helpers/system-root.js";
import { alternate, formatMs, median, pairedRatio, printTable } from "./lib-timing.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 50);
const NAMESPACE = "/bench-builders/versions";
const KEY = `${NAMESPACE}/builder-1/builder`;

function spread(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${formatMs(sorted[0] ?? NaN)} / ${formatMs(median(sorted))} / ${formatMs(sorted.at(-1) ?? NaN)}`;
}

async function main(): Promise<void> {
  const [etcd, sshd, dir] = await Promise.all([startEtcd(), startSshd(), tempDir("bench-b")]);
  const [type, key] = (await readFile(sshd.hostKeyFile, "utf8")).trim().split(/\s+/);
  const entry = (speedFactor: number): string =>
    JSON.stringify({
      uri: `ssh-ng://${sshd.user}@127.0.0.1`,
      systems: ["x86_64-linux"],
      maxJobs: 1,
      speedFactor,
      supportedFeatures: [],
      mandatoryFeatures: [],
      publicHostKey: Buffer.from(`${type} ${key}`).toString("base64"),
    });
  const config = await writeConfig(
    ["[ogygia.etcd]", `endpoints = ["${etcd.endpoint}"]`, `namespace = "${NAMESPACE}"`, ""].join(
      "\n",
    ),
  );
  await etcd.client.put(`${NAMESPACE}/builder-1/alive`, "x");
  await etcd.client.put(KEY, entry(1));
  const output = path.join(dir, "machines");
  const env = baseEnv({ OGYGIA_HOSTNAME: "bench-consumer", NIX_SSHOPTS: sshd.sshOptions });
  const daemon = startProcess(
    OGYGIA_BIN,
    [
      "builders",
      "--watch",
      "--output",
      output,
      "--config",
      config,
      "--ssh-key",
      sshd.clientKey,
      "--log-level",
      "warn",
    ],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  try {
    await waitFor("the first machines file", async () =>
      (await readFile(output, "utf8").catch(() => "")).includes(" 1 1 - - ") ? true : undefined,
    );

    // 1. Change to file, beside the raw watch.
    let wanted: { value: string; resolve: (at: number) => void } | undefined;
    const watcher = await etcd.client.watchPuts(KEY, (value) => {
      const at = performance.now();
      if (value.toString("utf8") === wanted?.value) wanted.resolve(at);
    });
    const ours: number[] = [];
    const base: number[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const speed = 1000 + round;
      const value = entry(speed);
      const seenByWatch = new Promise<number>((resolve) => {
        wanted = { value, resolve };
      });
      const fileChanged = new Promise<number>((resolve) => {
        const fsWatch = watch(dir, () => {
          const at = performance.now();
          void readFile(output, "utf8")
            .catch(() => "")
            .then((text) => {
              if (text.includes(` 1 ${speed} - - `)) {
                fsWatch.close();
                resolve(at);
              }
            });
        });
      });
      const started = performance.now();
      await etcd.client.put(KEY, value);
      const [watchAt, fileAt] = await Promise.all([seenByWatch, fileChanged]);
      base.push(watchAt - started);
      ours.push(fileAt - started);
      await sleep(100);
    }
    watcher.cancel();
    console.log(`fleet change to machines file, ${ROUNDS} changes (min / median / max):`);
    printTable([
      ["", "latency", "ratio to the raw watch, paired"],
      ["ogygia builders --watch: file renamed into place", spread(ours), pairedRatio(ours, base)],
      ["baseline: raw etcd watch sees the put", spread(base), "1.00x"],
      ["target", "< 1000 ms", ""],
    ]);

    // 2. One probe through the CLI beside a plain ssh.
    const knownHosts = path.join(dir, "known_hosts");
    await writeFile(knownHosts, `127.0.0.1 ${type} ${key}\n`);
    const timing = alternate(
      {
        ours: {
          command: OGYGIA_BIN,
          args: ["builders", "--check", "--config", config, "--ssh-key", sshd.clientKey],
          options: { env },
        },
        base: {
          command: "ssh",
          args: [
            "-o",
            "BatchMode=yes",
            "-o",
            `UserKnownHostsFile=${knownHosts}`,
            "-i",
            sshd.clientKey,
            "-p",
            String(sshd.port),
            `${sshd.user}@127.0.0.1`,
            "nix-store --version",
          ],
        },
      },
      { rounds: Math.max(5, Math.floor(ROUNDS / 5)), warmup: 2 },
    );
    const o = timing.ours?.runs ?? [];
    const b = timing.base?.runs ?? [];
    console.log("\none probe (min / median / max):");
    printTable([
      ["", "wall time", "ratio to plain ssh, paired"],
      ["ogygia builders --check (fleet read + ssh probe)", spread(o), pairedRatio(o, b)],
      ["baseline: ssh ... nix-store --version", spread(b), "1.00x"],
    ]);
  } finally {
    await daemon.stop("SIGTERM");
    await Promise.all([etcd.stop(), sshd.stop(), removeDir(dir)]);
  }
}

await main();
