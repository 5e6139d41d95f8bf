/**
 * The builder entry on ZooKeeper: an ephemeral node of the publisher's
 * lease session beside `alive`, listed by `ogygia builders`, gone when the
 * publisher stops, and replaced (not duplicated) when it starts again.
 */

import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { removeDir, tempDir, waitFor, type ManagedProcess } from "./helpers/process.js";
import { standardBootRoot, startPublisher, type BootRoot } from "./helpers/publish.js";
import { writeConfig } from "./helpers/system-root.js";
import { startZooKeeper, type ZooKeeperServer } from "./helpers/zookeeper.js";

const NAMESPACE = "/builders-zk/versions";
const HANG_GUARD = { timeoutMs: 60_000, intervalMs: 100 };

let zk: ZooKeeperServer;
let dir: string;
let root: BootRoot;
let builderConfig: string;
let consumerConfig: string;
let publisher: ManagedProcess | undefined;

beforeAll(async () => {
  [zk, dir, root] = await Promise.all([
    startZooKeeper(),
    tempDir("builders-zk"),
    standardBootRoot(),
  ]);
  const hostKey = path.join(dir, "host_key");
  await promisify(execFile)("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  const backend = [
    "[ogygia.zookeeper]",
    `endpoints = ["${zk.endpoint}"]`,
    `namespace = "${NAMESPACE}"`,
    "timeout_seconds = 4",
    "",
    "[ogygia.publish]",
    "lease_ttl_seconds = 4",
    "",
  ].join("\n");
  builderConfig = await writeConfig(
    [
      backend,
      "[ogygia.builder]",
      'address = "build01.example.com"',
      'protocol = "ssh"',
      'systems = ["x86_64-linux", "aarch64-linux"]',
      "max_jobs = 3",
      `host_key_file = "${hostKey}.pub"`,
      "",
    ].join("\n"),
  );
  consumerConfig = await writeConfig(backend);
}, 60_000);

afterAll(async () => {
  await publisher?.stop("SIGKILL");
  await Promise.all([zk.stop(), root.remove(), removeDir(dir)]);
});

async function listed(): Promise<{ host: string; uri: string; line: string }[]> {
  const result = await runCli(["builders", "--json", "--config", consumerConfig], {
    env: { OGYGIA_HOSTNAME: "consumer" },
  });
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { builders: { host: string; uri: string; line: string }[] })
    .builders;
}

describe("builder entries on ZooKeeper", () => {
  it("lists a running publisher's entry, and drops it once the publisher stops", async () => {
    publisher = startPublisher({ config: builderConfig, root: root.root, host: "build01" });
    const builders = await waitFor(
      "the entry",
      async () => {
        const b = await listed();
        return b.length > 0 ? b : undefined;
      },
      HANG_GUARD,
    );
    expect(builders).toEqual([
      expect.objectContaining({
        host: "build01",
        uri: "ssh://nix-builder@build01.example.com",
        line: expect.stringMatching(
          /^ssh:\/\/nix-builder@build01\.example\.com x86_64-linux,aarch64-linux - 3 1 - - [A-Za-z0-9+/=]+$/,
        ) as unknown,
      }),
    ]);
    await publisher.stop("SIGTERM");
    expect(publisher.output()).toContain("builder entry withdrawn");
    await waitFor(
      "the entry to go",
      async () => ((await listed()).length === 0 ? true : undefined),
      HANG_GUARD,
    );
  });

  it("a publisher killed and started again replaces its leftover entry", async () => {
    publisher = startPublisher({ config: builderConfig, root: root.root, host: "build01" });
    await waitFor(
      "the entry",
      async () => ((await listed()).length > 0 ? true : undefined),
      HANG_GUARD,
    );
    await publisher.stop("SIGKILL");
    publisher = startPublisher({ config: builderConfig, root: root.root, host: "build01" });
    await waitFor(
      "the new publisher's entry",
      () => (publisher?.output().includes("builder entry published") ? true : undefined),
      HANG_GUARD,
    );
    expect((await listed()).map((b) => b.host)).toEqual(["build01"]);
    await publisher.stop("SIGTERM");
  });

  it("a host key that cannot be read is logged; the states are published without the entry", async () => {
    const broken = await writeConfig(
      [
        "[ogygia.zookeeper]",
        `endpoints = ["${zk.endpoint}"]`,
        `namespace = "${NAMESPACE}"`,
        "",
        "[ogygia.builder]",
        `host_key_file = "${path.join(dir, "missing.pub")}"`,
        "",
      ].join("\n"),
    );
    publisher = startPublisher({ config: broken, root: root.root, host: "build02" });
    await waitFor(
      "the publisher to hold alive",
      () => (publisher?.output().includes('"msg":"alive"') ? true : undefined),
      HANG_GUARD,
    );
    expect(publisher.output()).toContain(
      `cannot read the SSH host key ${path.join(dir, "missing.pub")}: ENOENT`,
    );
    expect(await listed()).toEqual([]);
    await publisher.stop("SIGTERM");
  });
});
