/**
 * The fleet's credentials against real servers: etcd with TLS (a CA, server
 * and client certificates made by openssl here) and authentication on, and
 * ZooKeeper with digest identities and ACLs. `ogygia fleet grant` makes
 * each host's credentials; status, publish and watch work with them; a host
 * cannot write another's keys; a wrong password and an untrusted server
 * certificate are clear errors.
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

import { OGYGIA_BIN, baseEnv, runCli } from "./helpers/cli.js";
import {
  enableEtcdAuth,
  makeTlsFiles,
  startEtcd,
  type EtcdServer,
  type EtcdTestClient,
  type EtcdTlsFiles,
} from "./helpers/etcd.js";
import {
  REV,
  standardBootRoot,
  startPublisher,
  uniqueNamespace,
  type BootRoot,
  type StatusJsonHost,
} from "./helpers/publish.js";
import { startProcess, tempDir, waitFor, type ManagedProcess } from "./helpers/process.js";
import { startZooKeeper, type ZooKeeperServer } from "./helpers/zookeeper.js";

const A = "web01";
const B = "web02";

interface Harness {
  dir: string;
  started: ManagedProcess[];
  roots: BootRoot[];
}

function harness(): Harness {
  return { dir: "", started: [], roots: [] };
}

async function cleanUp(h: Harness): Promise<void> {
  await Promise.all(h.started.splice(0).map((p) => p.stop("SIGKILL")));
  await Promise.all(h.roots.splice(0).map((r) => r.remove()));
}

/** Writes a configuration file into the test's folder. */
async function configFile(h: Harness, name: string, lines: string[]): Promise<string> {
  const file = path.join(h.dir, `${name}.toml`);
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

async function statusJson(config: string): Promise<{
  code: number | null;
  stderr: string;
  hosts: StatusJsonHost[];
  error: string | null;
}> {
  const result = await runCli(["status", "--json"], {
    env: { OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" },
  });
  const json = result.stdout.startsWith("{")
    ? (JSON.parse(result.stdout) as { hosts: StatusJsonHost[]; error: string | null })
    : { hosts: [], error: null };
  return { code: result.code, stderr: result.stderr, hosts: json.hosts, error: json.error };
}

async function publishOnce(h: Harness, config: string, host: string) {
  const root = await standardBootRoot();
  h.roots.push(root);
  return runCli(["publish", "--once", "--root", root.root, "--config", config], {
    env: { OGYGIA_HOSTNAME: host },
  });
}

function publisher(h: Harness, config: string, root: BootRoot, host: string): ManagedProcess {
  const proc = startPublisher({ config, root: root.root, host });
  h.started.push(proc);
  return proc;
}

/** Waits until `status --watch --json` run with `config` shows `host` online at `revision`. */
async function watchSees(
  h: Harness,
  config: string,
  host: string,
  revision: string,
): Promise<void> {
  const watcher = startProcess(OGYGIA_BIN, ["status", "--watch", "--json"], {
    env: baseEnv({ OGYGIA_CONFIG: config, OGYGIA_HOSTNAME: "observer.example.org" }),
  });
  h.started.push(watcher);
  await waitFor(
    `the watch to show ${host} at ${revision}`,
    () =>
      watcher
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .some((l) =>
          (JSON.parse(l) as { hosts: StatusJsonHost[] }).hosts.some(
            (x) => x.host === host && x.online === true && x.current === revision,
          ),
        )
        ? true
        : undefined,
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  await watcher.stop("SIGTERM");
}

async function grant(admin: string, host: string, file: string) {
  return runCli(["fleet", "grant", host, "--password-file", file, "--config", admin, "--json"]);
}

/**
 * `grant --keep-password` re-grants `B` (no publisher of its own holds it) with the password in its file: the
 * file is left as it is and still authenticates (a publish with it works);
 * a missing or malformed file is refused (exit 2, naming it) before any change.
 */
async function keepsPassword(
  h: Harness,
  admin: string,
  hostConfig: (name: string, user: string, file: string) => Promise<string>,
): Promise<void> {
  const keep = (file: string, ...extra: string[]) =>
    runCli([
      "fleet",
      "grant",
      B,
      "--password-file",
      file,
      "--keep-password",
      "--config",
      admin,
      ...extra,
    ]);
  const file = path.join(h.dir, `${B}.password`);
  const before = await readFile(file, "utf8");
  const kept = await keep(file, "--json");
  expect(kept.stderr).toBe("");
  expect(kept.code).toBe(0);
  expect(JSON.parse(kept.stdout)).toMatchObject({
    host: B,
    passwordFile: file,
    passwordKept: true,
  });
  expect(await readFile(file, "utf8")).toBe(before);
  const publish = await publishOnce(h, await hostConfig("b-kept", B, file), B);
  expect(publish.stderr).not.toContain("refused");
  expect(publish.code).toBe(0);

  const absent = path.join(h.dir, "absent-for-keep.password");
  const missing = await keep(absent);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain(`cannot keep the password in ${absent}: it does not exist`);
  const bad = path.join(h.dir, "bad-for-keep.password");
  await writeFile(bad, "two words\n", { mode: 0o600 });
  const malformed = await keep(bad);
  expect(malformed.code).toBe(2);
  expect(malformed.stderr).toContain("its first line is not a password");
  expect(malformed.stderr).not.toContain("two words");
}

describe("etcd with TLS, authentication and per-host grants", () => {
  const h = harness();
  let etcd: EtcdServer;
  let tls: EtcdTlsFiles;
  let root: EtcdTestClient;
  let namespace: string;
  let admin: string;

  /** `[ogygia.etcd]` with the TLS files and `extra` lines. */
  function etcdSection(extra: string[], caFile = tls.caFile): string[] {
    return [
      "[ogygia.etcd]",
      `endpoints = ["${etcd.endpoint}"]`,
      `namespace = "${namespace}"`,
      "timeout_seconds = 10",
      `ca_file = "${caFile}"`,
      `cert_file = "${tls.clientCertFile}"`,
      `key_file = "${tls.clientKeyFile}"`,
      ...extra,
      "",
      "[ogygia.publish]",
      "lease_ttl_seconds = 3",
    ];
  }

  function hostConfig(name: string, user: string, passwordFile: string): Promise<string> {
    return configFile(
      h,
      name,
      etcdSection([`username = "${user}"`, `password_file = "${passwordFile}"`]),
    );
  }

  beforeAll(async () => {
    h.dir = await tempDir("fleet-credentials");
    const tlsDir = path.join(h.dir, "tls");
    await mkdir(tlsDir);
    tls = makeTlsFiles(tlsDir);
    etcd = await startEtcd({ tls });
    root = await enableEtcdAuth(etcd, "root-secret", tls);
    namespace = uniqueNamespace();
    await writeFile(path.join(h.dir, "root.password"), "root-secret\n", { mode: 0o600 });
    // A relative password file: found next to the configuration file.
    admin = await configFile(
      h,
      "admin",
      etcdSection(['username = "root"', 'password_file = "root.password"']),
    );
  });

  afterEach(() => cleanUp(h));

  afterAll(async () => {
    root.raw.close();
    await etcd.stop();
  });

  it("grants hosts their own users, writing each password file 0600, and lists them", async () => {
    for (const host of [A, B]) {
      const result = await grant(admin, host, path.join(h.dir, `${host}.password`));
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ backend: "etcd", host, username: host });
      expect(result.stdout).not.toMatch(/"password"/);
      expect((await stat(path.join(h.dir, `${host}.password`))).mode & 0o777).toBe(0o600);
    }
    const hosts = await runCli(["fleet", "hosts", "--json", "--config", admin]);
    expect(hosts.code).toBe(0);
    expect(JSON.parse(hosts.stdout)).toMatchObject({ backend: "etcd", hosts: [A, B] });
  });

  it("publishes, reads and watches with a host's own credentials", async () => {
    const config = await hostConfig("a", A, path.join(h.dir, `${A}.password`));
    const bootRoot = await standardBootRoot();
    h.roots.push(bootRoot);
    publisher(h, config, bootRoot, A);
    await waitFor(
      "web01 to publish alive",
      async () => ((await root.get(`${namespace}/${A}/alive`)) !== null ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    const status = await statusJson(config);
    expect(status.stderr).toBe("");
    expect(status.hosts.find((x) => x.host === A)).toMatchObject({ current: REV.a, online: true });
    await watchSees(h, config, A, REV.a);
  });

  it("refuses a host's write to another host's keys, saying so", async () => {
    await root.put(`${namespace}/${B}/current`, REV.c);
    const config = await hostConfig("a-as-b", A, path.join(h.dir, `${A}.password`));
    const result = await publishOnce(h, config, B);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`refused to let user "${A}" write ${namespace}/${B}/`);
    expect(result.stderr).toContain("permission denied");
    expect(await root.get(`${namespace}/${B}/current`)).toBe(REV.c);
  });

  it("reports a wrong password as such", async () => {
    const wrong = path.join(h.dir, "wrong.password");
    await writeFile(wrong, "not-the-password\n", { mode: 0o600 });
    const config = await hostConfig("wrong", A, wrong);
    const status = await statusJson(config);
    expect(status.error).toContain(`refused the credentials of user "${A}"`);
    expect(status.error).toContain("wrong user name or password");
    expect(status.error).not.toContain("not-the-password");
    const publish = await publishOnce(h, config, A);
    expect(publish.code).not.toBe(0);
    expect(publish.stderr).toContain("wrong user name or password");
  });

  it("reports a server certificate signed by a CA it was not told to trust", async () => {
    const otherDir = path.join(h.dir, "other-ca");
    await mkdir(otherDir);
    const other = makeTlsFiles(otherDir);
    const config = await configFile(
      h,
      "untrusted",
      etcdSection(
        [`username = "${A}"`, `password_file = "${path.join(h.dir, `${A}.password`)}"`],
        other.caFile,
      ),
    );
    const status = await statusJson(config);
    expect(status.error).toContain("presented a certificate this host does not trust");
    const text = await runCli(["status"], { env: { OGYGIA_CONFIG: config } });
    expect(text.stderr).toContain("presented a certificate this host does not trust");
  });

  it("reports a password file it cannot read, naming the file", async () => {
    const config = await hostConfig("missing", A, path.join(h.dir, "absent.password"));
    const status = await runCli(["status"], { env: { OGYGIA_CONFIG: config } });
    expect(status.code).not.toBe(0);
    expect(status.stderr).toContain(`password_file ${path.join(h.dir, "absent.password")}`);
    expect(status.stderr).toContain("does not exist");
  });

  it("grants again keeping the host's password (--keep-password)", async () => {
    await keepsPassword(h, admin, hostConfig);
  });

  it("revokes a host: its credentials no longer write", async () => {
    const revoked = await runCli(["fleet", "revoke", B, "--config", admin]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`revoked ${B}`);
    const hosts = await runCli(["fleet", "hosts", "--json", "--config", admin]);
    expect(JSON.parse(hosts.stdout)).toMatchObject({ hosts: [A] });
    const config = await hostConfig("b", B, path.join(h.dir, `${B}.password`));
    const publish = await publishOnce(h, config, B);
    expect(publish.code).not.toBe(0);
    expect(publish.stderr).toContain(`refused the credentials of user "${B}"`);
  });
});

describe("ZooKeeper with digest identities and ACLs", () => {
  const h = harness();
  let zk: ZooKeeperServer;
  let namespace: string;
  let admin: string;

  function zkSection(extra: string[]): string[] {
    return [
      "[ogygia.zookeeper]",
      `endpoints = ["${zk.endpoint}"]`,
      `namespace = "${namespace}"`,
      "timeout_seconds = 10",
      ...extra,
      "",
      "[ogygia.publish]",
      "lease_ttl_seconds = 3",
    ];
  }

  function hostConfig(name: string, user: string, passwordFile: string): Promise<string> {
    return configFile(
      h,
      name,
      zkSection([`username = "${user}"`, `password_file = "${passwordFile}"`]),
    );
  }

  beforeAll(async () => {
    h.dir = await tempDir("fleet-zk-credentials");
    zk = await startZooKeeper();
    namespace = uniqueNamespace();
    await writeFile(path.join(h.dir, "admin.password"), "admin-secret\n", { mode: 0o600 });
    admin = await configFile(
      h,
      "admin",
      zkSection(['username = "admin"', `password_file = "${path.join(h.dir, "admin.password")}"`]),
    );
  });

  afterEach(() => cleanUp(h));

  afterAll(async () => {
    await zk.stop();
  });

  it("grants hosts their digest identities and lists them", async () => {
    for (const host of [A, B]) {
      const result = await grant(admin, host, path.join(h.dir, `${host}.password`));
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect((await stat(path.join(h.dir, `${host}.password`))).mode & 0o777).toBe(0o600);
    }
    const hosts = await runCli(["fleet", "hosts", "--json", "--config", admin]);
    expect(hosts.code).toBe(0);
    expect(JSON.parse(hosts.stdout)).toMatchObject({ backend: "zookeeper", hosts: [A, B] });
    // Nobody without the host's identity may write its node.
    await expect(zk.put(`${namespace}/${A}/current`, "forged")).rejects.toThrow(/NO_AUTH/);
  });

  it("publishes, reads and watches with a host's own identity", async () => {
    const config = await hostConfig("a", A, path.join(h.dir, `${A}.password`));
    const bootRoot = await standardBootRoot();
    h.roots.push(bootRoot);
    const proc = publisher(h, config, bootRoot, A);
    await waitFor(
      "web01 to publish alive",
      async () => ((await zk.get(`${namespace}/${A}/alive`)) !== null ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${proc.output()}`);
    });
    const status = await statusJson(config);
    expect(status.stderr).toBe("");
    expect(status.hosts.find((x) => x.host === A)).toMatchObject({ current: REV.a, online: true });
    await watchSees(h, config, A, REV.a);
    // The nodes it created are not writable by others either.
    await expect(zk.put(`${namespace}/${A}/current`, "forged")).rejects.toThrow(/NO_AUTH/);
  });

  it("publishes the builder entry (through the coordinator's lease) with the host's identity", async () => {
    const hostKey = path.join(h.dir, "host_key");
    await promisify(execFile)("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    const config = await configFile(h, "a-builder", [
      ...zkSection([`username = "${A}"`, `password_file = "${path.join(h.dir, `${A}.password`)}"`]),
      "",
      "[ogygia.builder]",
      'address = "build01.example.com"',
      'systems = ["x86_64-linux"]',
      `host_key_file = "${hostKey}.pub"`,
    ]);
    const bootRoot = await standardBootRoot();
    h.roots.push(bootRoot);
    const proc = publisher(h, config, bootRoot, A);
    await waitFor(
      "web01 to publish its builder entry",
      async () => ((await zk.get(`${namespace}/${A}/builder`)) !== null ? true : undefined),
      { timeoutMs: 20_000, intervalMs: 100 },
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${proc.output()}`);
    });
    // Created with the host's identity: nobody else may write it.
    await expect(zk.put(`${namespace}/${A}/builder`, "forged")).rejects.toThrow(/NO_AUTH/);
  });

  it("refuses a host's write to another host's nodes, saying so", async () => {
    const config = await hostConfig("a-as-b", A, path.join(h.dir, `${A}.password`));
    const result = await publishOnce(h, config, B);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`refused to let user "${A}" write ${namespace}/${B}/`);
    expect(result.stderr).toContain("not granted");
  });

  it("reports a wrong password as such", async () => {
    const wrong = path.join(h.dir, "wrong.password");
    await writeFile(wrong, "not-the-password\n", { mode: 0o600 });
    const config = await hostConfig("wrong", A, wrong);
    const publish = await publishOnce(h, config, A);
    expect(publish.code).not.toBe(0);
    expect(publish.stderr).toContain(`refused the credentials of user "${A}"`);
    expect(publish.stderr).not.toContain("not-the-password");
  });

  it("grants again keeping the host's password (--keep-password)", async () => {
    await keepsPassword(h, admin, hostConfig);
  });

  it("revokes a host: its identity no longer writes", async () => {
    const revoked = await runCli(["fleet", "revoke", B, "--config", admin]);
    expect(revoked.code).toBe(0);
    const hosts = await runCli(["fleet", "hosts", "--json", "--config", admin]);
    expect(JSON.parse(hosts.stdout)).toMatchObject({ hosts: [A] });
    const config = await hostConfig("b", B, path.join(h.dir, `${B}.password`));
    const publish = await publishOnce(h, config, B);
    expect(publish.code).not.toBe(0);
    expect(publish.stderr).toMatch(/refused to let user "web02" write|refused the credentials/);
  });
});
