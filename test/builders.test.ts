/**
 * Distributed builds from the live fleet, end to end: a real etcd, a real
 * OpenSSH server standing in for the builder host, `ogygia publish`
 * publishing its builder entry, `ogygia builders --watch` writing the
 * machines file, and real Nix building a derivation on the builder through
 * that file.
 */

import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { baseEnv, OGYGIA_BIN, runCli } from "./helpers/cli.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";
import { runNix, uniqueSalt } from "./helpers/nix.js";
import {
  removeDir,
  startProcess,
  tempDir,
  waitFor,
  type ManagedProcess,
} from "./helpers/process.js";
import { standardBootRoot, startPublisher, type BootRoot } from "./helpers/publish.js";
import { startSshd, type SshServer } from "./helpers/sshd.js";
import { writeConfig } from "./helpers/system-root.js";

const NAMESPACE = "/builders-test/versions";
const BUILDER = "builder-1.example.com";
const CONSUMER = "consumer.example.com";
/** Generous bounds: they only stop a hung test, they assert nothing about speed. */
const HANG_GUARD = { timeoutMs: 60_000, intervalMs: 50 };

let etcd: EtcdServer;
let sshd: SshServer;
let dir: string;
let root: BootRoot;
let builderConfig: string;
let consumerConfig: string;
let publisher: ManagedProcess;
let daemon: ManagedProcess;
let machines: string;

const readMachines = async (): Promise<string> => readFile(machines, "utf8").catch(() => "");

beforeAll(async () => {
  [etcd, sshd, dir, root] = await Promise.all([
    startEtcd(),
    startSshd(),
    tempDir("builders"),
    standardBootRoot(),
  ]);
  const backend = [
    "[ogygia.etcd]",
    `endpoints = ["${etcd.endpoint}"]`,
    `namespace = "${NAMESPACE}"`,
    "timeout_seconds = 2",
    "",
    "[ogygia.publish]",
    "lease_ttl_seconds = 2",
    "",
  ].join("\n");
  builderConfig = await writeConfig(
    [
      backend,
      "[ogygia.builder]",
      `user = "${sshd.user}"`,
      'address = "127.0.0.1"',
      "max_jobs = 2",
      "speed_factor = 2",
      `host_key_file = "${sshd.hostKeyFile}"`,
      "",
    ].join("\n"),
  );
  consumerConfig = await writeConfig(backend);
  machines = path.join(dir, "machines");
  publisher = startPublisher({ config: builderConfig, root: root.root, host: BUILDER });
  daemon = startProcess(
    OGYGIA_BIN,
    [
      "builders",
      "--watch",
      "--output",
      machines,
      "--config",
      consumerConfig,
      "--ssh-key",
      sshd.clientKey,
      "--probe-interval",
      "0.5",
      "--backoff-base",
      "0.5",
      "--probe-timeout",
      "5",
      "--log-level",
      "debug",
    ],
    {
      env: baseEnv({ OGYGIA_HOSTNAME: CONSUMER, NIX_SSHOPTS: sshd.sshOptions }),
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
}, 60_000);

afterAll(async () => {
  await daemon.stop("SIGKILL");
  await publisher.stop("SIGKILL");
  await Promise.all([etcd.stop(), sshd.stop(), root.remove(), removeDir(dir)]);
});

/** The machines-file line the builder's entry should become. */
async function expectedLine(): Promise<string> {
  const [type, key] = (await readFile(sshd.hostKeyFile, "utf8")).trim().split(/\s+/);
  const hostKey = Buffer.from(`${type} ${key}`).toString("base64");
  return `ssh-ng://${sshd.user}@127.0.0.1 SYSTEMS ${sshd.clientKey} 2 2 - - ${hostKey}`;
}

describe("ogygia builders --watch with a real builder", () => {
  it("lists the published builder in Nix's eight-field format, with Nix's system detected", async () => {
    const text = await waitFor(
      "the builder in the machines file",
      async () => {
        const t = await readMachines();
        return t.includes("ssh-ng://") ? t : undefined;
      },
      HANG_GUARD,
    );
    // Nix's own `system` and `extra-platforms`, as the publisher detects them.
    const settings = JSON.parse(
      (await runNix("nix", ["show-config", "--json"])).stdout.toString(),
    ) as Record<string, { value: unknown }>;
    const systems = [
      ...new Set([settings.system?.value, ...(settings["extra-platforms"]?.value as string[])]),
    ].join(",");
    expect(systems).toMatch(/^[a-z0-9_]+-linux/);
    expect(text).toBe(`${(await expectedLine()).replace("SYSTEMS", systems)}\n`);
    expect(text.trim().split(" ")).toHaveLength(8);
  });

  it("real Nix builds a derivation on it through the file, with no local builds allowed", async () => {
    const salt = uniqueSalt("remote");
    const expr = path.join(dir, "remote.nix");
    await writeFile(
      expr,
      `derivation { name = "${salt}"; system = builtins.currentSystem; builder = "/bin/sh";
         PATH = "/usr/bin:/bin"; args = [ "-c" "echo built remotely > $out" ]; }\n`,
    );
    const store = path.join(dir, "client-store");
    const result = await runNix(
      "nix-build",
      [expr, "--no-out-link", "--store", store, "--builders", `@${machines}`, "--max-jobs", "0"],
      { env: { NIX_SSHOPTS: sshd.sshOptions }, allowFailure: true },
    );
    expect(result.stderr).toMatch(
      new RegExp(
        `building '/nix/store/[a-z0-9]{32}-${salt}\\.drv' on 'ssh-ng://${sshd.user}@127\\.0\\.0\\.1'`,
      ),
    );
    expect(result.code, result.stderr).toBe(0);
    const out = result.stdout.toString().trim();
    expect(out).toMatch(new RegExp(`^/nix/store/[a-z0-9]{32}-${salt}$`));
    expect(await readFile(path.join(store, out), "utf8")).toBe("built remotely\n");
  });

  it("ogygia builders --check probes it over SSH and prints the same line", async () => {
    const result = await runCli(
      ["builders", "--check", "--config", consumerConfig, "--ssh-key", sshd.clientKey],
      { env: { OGYGIA_HOSTNAME: CONSUMER, NIX_SSHOPTS: sshd.sshOptions } },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(await readMachines());
    expect(result.stderr).toContain(
      `ok: ${BUILDER} (ssh-ng://${sshd.user}@127.0.0.1) answers: nix-store (Nix)`,
    );
  });

  it("the builder itself never lists its own entry", async () => {
    const result = await runCli(["builders", "--json", "--config", builderConfig], {
      env: { OGYGIA_HOSTNAME: BUILDER },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ host: BUILDER, builders: [], failed: [] });
  });

  it("skips malformed entries with a warning naming the host, never writing them", async () => {
    const good = JSON.parse(
      (await etcd.client.get(`${NAMESPACE}/${BUILDER}/builder`)) ?? "null",
    ) as Record<string, unknown>;
    const bad: Record<string, string> = {
      "bad-uri": JSON.stringify({ ...good, uri: "http://evil@127.0.0.1" }),
      "bad-key": JSON.stringify({ ...good, publicHostKey: "not base64!" }),
      "bad-types": JSON.stringify({ ...good, maxJobs: "4", systems: "x86_64-linux" }),
      "bad-json": "{",
    };
    for (const [host, value] of Object.entries(bad)) {
      await etcd.client.put(`${NAMESPACE}/${host}/alive`, "x");
      await etcd.client.put(`${NAMESPACE}/${host}/builder`, value);
    }
    for (const host of Object.keys(bad)) {
      await waitFor(
        `the daemon's warning about ${host}`,
        () =>
          daemon.output().includes(`skipping the malformed builder entry of ${host}`)
            ? true
            : undefined,
        HANG_GUARD,
      );
    }
    const text = await readMachines();
    expect(text.split("\n").filter((l) => l !== "")).toHaveLength(1);
    expect(text).toContain("ssh-ng://");

    const listed = await runCli(["builders", "--config", consumerConfig], {
      env: { OGYGIA_HOSTNAME: CONSUMER },
    });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout.trim().split("\n")).toHaveLength(1);
    expect(listed.stderr).toContain("warning: skipping the builder entry of bad-uri: uri");
    expect(listed.stderr).toContain(
      "warning: skipping the builder entry of bad-key: publicHostKey",
    );
    expect(listed.stderr).toContain("warning: skipping the builder entry of bad-types: systems");
    expect(listed.stderr).toContain(
      "warning: skipping the builder entry of bad-json: entry is not JSON",
    );
  });

  it("--check says why a builder fails: a host key that is not the server's", async () => {
    const good = JSON.parse(
      (await etcd.client.get(`${NAMESPACE}/${BUILDER}/builder`)) ?? "null",
    ) as Record<string, unknown>;
    const other = path.join(dir, "other_key");
    await runNix("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const [type, key] = (await readFile(`${other}.pub`, "utf8")).trim().split(/\s+/);
    await etcd.client.put(`${NAMESPACE}/impostor/alive`, "x");
    await etcd.client.put(
      `${NAMESPACE}/impostor/builder`,
      JSON.stringify({
        ...good,
        speedFactor: 1,
        publicHostKey: Buffer.from(`${type} ${key}`).toString("base64"),
      }),
    );
    const result = await runCli(
      ["builders", "--check", "--json", "--config", consumerConfig, "--ssh-key", sshd.clientKey],
      { env: { OGYGIA_HOSTNAME: CONSUMER, NIX_SSHOPTS: sshd.sshOptions } },
    );
    expect(result.code).toBe(1);
    const doc = JSON.parse(result.stdout) as {
      builders: { host: string }[];
      failed: { host: string; probe: { ok: boolean; reason: string } }[];
    };
    expect(doc.builders.map((b) => b.host)).toEqual([BUILDER]);
    expect(doc.failed).toHaveLength(1);
    expect(doc.failed[0]?.host).toBe("impostor");
    expect(doc.failed[0]?.probe.reason).toContain("Host key verification failed");
    // The daemon probes it too and keeps it out of the file.
    await waitFor(
      "the daemon to drop the impostor",
      () =>
        daemon.output().includes('"builder":"impostor","reason":"Host key verification failed')
          ? true
          : undefined,
      HANG_GUARD,
    );
    await etcd.client.raw.deleteRange({ key: Buffer.from(`${NAMESPACE}/impostor/alive`) });
  });

  it("sshd stopped: the probe drops the builder with backoff; back when sshd answers", async () => {
    await sshd.pause();
    await waitFor(
      "the builder to leave the file",
      async () => ((await readMachines()) === "" ? true : undefined),
      HANG_GUARD,
    );
    // Two failures in a row: the second waited for the first's backoff.
    await waitFor(
      "a second failed probe",
      () =>
        /"builder":"builder-1\.example\.com","reason":"[^"]*Connection refused[^"]*","failures":2,"retryInMs":1500/.test(
          daemon.output(),
        )
          ? true
          : undefined,
      HANG_GUARD,
    );
    await sshd.resume();
    const text = await waitFor(
      "the builder to come back",
      async () => {
        const t = await readMachines();
        return t.includes("ssh-ng://") ? t : undefined;
      },
      HANG_GUARD,
    );
    expect(text.split("\n").filter((l) => l !== "")).toHaveLength(1);
    expect(daemon.output()).toContain("builder answers again; listed");
  });

  it("the builder's publisher stopped (SIGTERM): its entry leaves the file", async () => {
    await publisher.stop("SIGTERM");
    expect(publisher.output()).toContain("builder entry withdrawn");
    await waitFor(
      "the entry to leave the file",
      async () => ((await readMachines()) === "" ? true : undefined),
      HANG_GUARD,
    );
    expect(await etcd.client.get(`${NAMESPACE}/${BUILDER}/builder`)).toBeNull();
  });
});
