/**
 * `ogygia nebula ca init | keygen | sign`, run as separate processes with
 * Debian's real `nebula-cert`, and, for `sign --ip auto`, each registered
 * backend's real server: addresses handed out once, kept by their host
 * across re-signing, and never twice when operators sign at once.
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { removeDir, tempDir } from "./helpers/process.js";
import { writeConfig } from "./helpers/system-root.js";

const run = promisify(execFile);

let dir: string;
/** Where `ca init` is tried. */
let caDir: string;
/** The CA `sign` uses, made with nebula-cert directly so that each test stands alone. */
let signingCa: string;

beforeAll(async () => {
  dir = await tempDir("nebula");
  caDir = path.join(dir, "ca");
  signingCa = path.join(dir, "signing-ca");
  await mkdir(signingCa);
  await run("nebula-cert", ["ca", "-name", "signing", "-duration", "24h"], { cwd: signingCa });
});

afterAll(async () => {
  await removeDir(dir);
});

/** `nebula-cert print -json` of a certificate. */
async function facts(file: string): Promise<{ name: string; ips: string[]; groups: string[] }> {
  const { stdout } = await run("nebula-cert", ["print", "-json", "-path", file]);
  return (JSON.parse(stdout) as { details: { name: string; ips: string[]; groups: string[] } })
    .details;
}

async function keygen(name: string): Promise<string> {
  const keyDir = path.join(dir, "keys", name);
  const result = await runCli(["nebula", "keygen", "--dir", keyDir]);
  expect(result.code, result.stderr).toBe(0);
  return path.join(keyDir, "host.pub");
}

describe("ogygia nebula ca init and keygen", () => {
  it("makes a CA with its key 0600 and never overwrites it", async () => {
    const result = await runCli([
      "nebula",
      "ca",
      "init",
      "--name",
      "test-mesh",
      "--duration",
      "24h",
      "--out",
      caDir,
      "--json",
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout) as { facts: { name: string; isCa: boolean } };
    expect(json.facts).toMatchObject({ name: "test-mesh", isCa: true });
    expect((await stat(path.join(caDir, "ca.key"))).mode & 0o777).toBe(0o600);
    const before = await readFile(path.join(caDir, "ca.key"));

    const again = await runCli(["nebula", "ca", "init", "--name", "other", "--out", caDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(
      `${path.join(caDir, "ca.crt")} exists; a CA is never overwritten`,
    );
    expect(await readFile(path.join(caDir, "ca.key"))).toEqual(before);
  });

  it("keygen makes the host's pair once, prints only the public key, and keeps it", async () => {
    const keyDir = path.join(dir, "keygen");
    const first = await runCli(["nebula", "keygen", "--dir", keyDir]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(
      /^-----BEGIN NEBULA X25519 PUBLIC KEY-----\n.+\n-----END NEBULA X25519 PUBLIC KEY-----\n$/,
    );
    const key = await readFile(path.join(keyDir, "host.key"), "utf8");
    expect(key).toContain("PRIVATE KEY");
    expect(first.stdout).not.toContain(key.split("\n")[1] ?? "unreachable");
    expect((await stat(path.join(keyDir, "host.key"))).mode & 0o777).toBe(0o600);

    const second = await runCli(["nebula", "keygen", "--dir", keyDir, "--json"]);
    expect(JSON.parse(second.stdout)).toMatchObject({ created: false });
    expect(await readFile(path.join(keyDir, "host.key"), "utf8")).toBe(key);
  });
});

describe.each(FLEET_HARNESSES)("ogygia nebula sign with $label", (harness) => {
  let server: FleetServer;
  let config: string;
  let certDir: string;
  let namespace: string;

  beforeAll(async () => {
    server = await harness.start();
    namespace = `/nebula-${harness.kind}-${process.pid}/versions`;
    certDir = path.join(dir, `certs-${harness.kind}`);
    const section = harness.kind === "etcd" ? "[ogygia.etcd]" : "[ogygia.zookeeper]";
    config = await writeConfig(
      `${section}\nendpoints = ["${server.endpoint}"]\nnamespace = "${namespace}"\n\n` +
        `[ogygia.nebula]\nsubnet = "10.42.0.0/24"\nca_dir = "${signingCa}"\ncert_dir = "${certDir}"\n`,
    );
  }, 60_000);

  afterAll(async () => {
    await server.stop();
  });

  const sign = (args: string[]) =>
    runCli(["nebula", "sign", ...args, "--json"], { env: { OGYGIA_CONFIG: config } });

  it("gives a new host the next free address and keeps it across re-signing", async () => {
    const pub = await keygen(`${harness.kind}-web01`);
    const first = await sign(["web01", "--pub", pub, "--groups", "web,db"]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const made = JSON.parse(first.stdout) as {
      address: string;
      kept: boolean;
      certificate: string;
    };
    expect(made).toMatchObject({ address: "10.42.0.1/24", kept: false });
    expect(path.basename(made.certificate)).toMatch(/^web01-[0-9a-f]{16}\.crt$/);
    expect(await facts(made.certificate)).toMatchObject({
      name: "web01",
      ips: ["10.42.0.1/24"],
      groups: ["web", "db"],
    });
    await run("nebula-cert", [
      "verify",
      "-ca",
      path.join(signingCa, "ca.crt"),
      "-crt",
      made.certificate,
    ]);
    const prefix = `/nebula-${harness.kind}-${process.pid}/nebula/ogygia`;
    expect(await server.get(`${prefix}/hosts/web01`)).toBe("10.42.0.1");
    expect(await server.get(`${prefix}/addresses/10.42.0.1`)).toBe("web01");

    const again = await sign(["web01", "--pub", pub, "--duration", "1h"]);
    expect(JSON.parse(again.stdout)).toMatchObject({ address: "10.42.0.1/24", kept: true });
  });

  it("refuses an address that belongs to another host, and one outside the subnet", async () => {
    const pub = await keygen(`${harness.kind}-db01`);
    const taken = await sign(["db01", "--pub", pub, "--ip", "10.42.0.1/24"]);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain("error: 10.42.0.1 belongs to web01");
    const outside = await sign(["db01", "--pub", pub, "--ip", "10.43.0.9/24"]);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain("10.43.0.9 is not a host address of the Nebula subnet");
    const chosen = await sign(["db01", "--pub", pub, "--ip", "10.42.0.200/24"]);
    expect(JSON.parse(chosen.stdout)).toMatchObject({ address: "10.42.0.200/24", kept: false });
  });

  it("never hands out one address twice when operators sign at once", async () => {
    const hosts = Array.from({ length: 8 }, (_, i) => `race${i}`);
    const pubs = await Promise.all(hosts.map((h) => keygen(`${harness.kind}-${h}`)));
    for (let round = 0; round < 2; round++) {
      const results = await Promise.all(
        hosts.map((host, i) => sign([`${host}-${round}`, "--pub", pubs[i] ?? ""])),
      );
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      const addresses = results.map((r) => (JSON.parse(r.stdout) as { address: string }).address);
      expect(new Set(addresses).size).toBe(hosts.length);
    }
    // Every certificate written is one of the hosts', under its own name.
    const files = (await readdir(certDir)).filter((f) => f.startsWith("race"));
    expect(files).toHaveLength(hosts.length * 2);
  });

  it("says what is missing before taking an address", async () => {
    const missing = path.join(dir, `nobody-${harness.kind}.pub`);
    const result = await sign(["ghost", "--pub", missing]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error: ${missing} does not exist`);
    const prefix = `/nebula-${harness.kind}-${process.pid}/nebula/ogygia`;
    expect(await server.get(`${prefix}/hosts/ghost`)).toBeNull();
    await writeFile(missing, "not a key\n");
    const bad = await sign(["ghost", "--pub", missing]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("nebula-cert sign failed:");
  });
});

describe("ogygia nebula rekey", () => {
  it("renews certificates nearing expiry with the same address and groups, and leaves the others", async () => {
    const certs = path.join(dir, "rekey-certs");
    await mkdir(certs);
    const pubShort = await keygen("rekey-short");
    const pubLong = await keygen("rekey-long");
    // web01: a one-minute certificate (under a third left soon); web02: 12 hours.
    await run("nebula-cert", [
      "sign",
      "-ca-crt",
      path.join(signingCa, "ca.crt"),
      "-ca-key",
      path.join(signingCa, "ca.key"),
      "-in-pub",
      pubShort,
      "-name",
      "web01",
      "-ip",
      "10.77.0.5/16",
      "-groups",
      "web,prod",
      "-duration",
      "1m",
      "-out-crt",
      path.join(certs, "web01-old.crt"),
    ]);
    await run("nebula-cert", [
      "sign",
      "-ca-crt",
      path.join(signingCa, "ca.crt"),
      "-ca-key",
      path.join(signingCa, "ca.key"),
      "-in-pub",
      pubLong,
      "-name",
      "web02",
      "-ip",
      "10.77.0.6/16",
      "-duration",
      "12h",
      "-out-crt",
      path.join(certs, "web02.crt"),
    ]);
    await writeFile(path.join(certs, "broken.crt"), "not a certificate\n");

    // --within 2m: web01 is due, web02 is not; a dry run changes nothing.
    const dry = await runCli([
      "nebula",
      "rekey",
      "--certs",
      certs,
      "--ca",
      signingCa,
      "--within",
      "2m",
      "--dry-run",
      "--json",
    ]);
    expect(dry.code, dry.stderr).toBe(0);
    const planned = JSON.parse(dry.stdout) as {
      changes: { host: string; address: string; certificate: string | null }[];
      skipped: { file: string }[];
    };
    expect(planned.changes.map((c) => [c.host, c.address, c.certificate])).toEqual([
      ["web01", "10.77.0.5/16", null],
    ]);
    expect(planned.skipped.map((s) => path.basename(s.file))).toEqual(["broken.crt"]);
    expect((await readdir(certs)).sort()).toEqual(["broken.crt", "web01-old.crt", "web02.crt"]);

    const done = await runCli([
      "nebula",
      "rekey",
      "--certs",
      certs,
      "--ca",
      signingCa,
      "--within",
      "2m",
    ]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^web01 10\.77\.0\.5\/16: .* left — renewed until /m);
    const files = (await readdir(certs)).sort();
    expect(files).not.toContain("web01-old.crt");
    const renewed = files.find((f) => /^web01-[0-9a-f]{16}\.crt$/.test(f));
    expect(renewed).toBeDefined();
    const after = await facts(path.join(certs, renewed ?? ""));
    expect(after).toMatchObject({ name: "web01", ips: ["10.77.0.5/16"], groups: ["web", "prod"] });
    // The same public key as the host's pair: the host's key still works with it.
    const { stdout } = await run("nebula-cert", [
      "print",
      "-json",
      "-path",
      path.join(certs, renewed ?? ""),
    ]);
    const pem = await readFile(pubShort, "utf8");
    const hex = Buffer.from(pem.split("\n")[1] ?? "", "base64").toString("hex");
    expect((JSON.parse(stdout) as { details: { publicKey: string } }).details.publicKey).toBe(hex);

    // The renewed one-minute certificate has most of its lifetime left: by
    // the default threshold (a third of it) nothing is due.
    const again = await runCli(["nebula", "rekey", "--certs", certs, "--ca", signingCa]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`nothing to renew in ${certs}`);
  });

  it("refuses a --within that is not a duration", async () => {
    const result = await runCli(["nebula", "rekey", "--within", "soon"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--within "soon" is not a duration like 720h');
  });
});
