/**
 * `ogygia publish` publishing a host's Nebula certificate facts (`[ogygia.nebula]
 * cert_file`) and `ogygia nebula status` reading them back from each
 * registered backend's real server: address, groups, time left, unknown
 * CAs, address conflicts, values that are not facts; a renewed certificate
 * republished by the running daemon.
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { removeDir, tempDir, waitFor } from "./helpers/process.js";
import { startPublisher } from "./helpers/publish.js";
import { writeConfig } from "./helpers/system-root.js";

const run = promisify(execFile);

let dir: string;
let trusted: string;
let rogue: string;

async function makeCa(name: string): Promise<string> {
  const caDir = path.join(dir, name);
  await mkdir(caDir);
  await run("nebula-cert", ["ca", "-name", name, "-duration", "24h"], { cwd: caDir });
  return caDir;
}

/** Signs a fresh key pair as `name` and writes the certificate under `root`. */
async function hostCertificate(options: {
  ca: string;
  name: string;
  ip: string;
  groups?: string;
  duration?: string;
  root: string;
}): Promise<string> {
  const out = path.join(options.root, "etc/nebula");
  await mkdir(out, { recursive: true });
  const tmp = path.join(out, `.host-${Date.now()}`);
  await run("nebula-cert", [
    "sign",
    "-ca-crt",
    path.join(options.ca, "ca.crt"),
    "-ca-key",
    path.join(options.ca, "ca.key"),
    "-name",
    options.name,
    "-ip",
    options.ip,
    "-duration",
    options.duration ?? "12h",
    ...(options.groups === undefined ? [] : ["-groups", options.groups]),
    "-out-crt",
    `${tmp}.crt`,
    "-out-key",
    `${tmp}.key`,
  ]);
  await rename(`${tmp}.crt`, path.join(out, "host.crt"));
  return path.join(out, "host.crt");
}

async function fingerprint(file: string): Promise<string> {
  const { stdout } = await run("nebula-cert", ["print", "-json", "-path", file]);
  return (JSON.parse(stdout) as { fingerprint: string }).fingerprint;
}

beforeAll(async () => {
  dir = await tempDir("nebula-status");
  trusted = await makeCa("trusted");
  rogue = await makeCa("rogue");
});

afterAll(async () => {
  await removeDir(dir);
});

interface StatusJson {
  certificates: {
    host: string;
    address: string | null;
    groups: string[];
    level: string;
    reasons: string[];
    remainingMs: number | null;
  }[];
  conflicts: { address: string; hosts: string[] }[];
  caChecked: boolean;
}

describe.each(FLEET_HARNESSES)("nebula facts through ogygia publish with $label", (harness) => {
  let server: FleetServer;
  let namespace: string;
  let backendSection: string;

  beforeAll(async () => {
    server = await harness.start();
    namespace = `/nebula-status-${harness.kind}-${process.pid}/versions`;
    backendSection =
      `[ogygia.${harness.kind}]\nendpoints = ["${server.endpoint}"]\n` +
      `namespace = "${namespace}"\ntimeout_seconds = 5\n\n` +
      "[ogygia.publish]\nlease_ttl_seconds = 5\nresync_interval_seconds = 300\n\n";
  }, 60_000);

  afterAll(async () => {
    await server.stop();
  });

  const hostConfig = () =>
    writeConfig(`${backendSection}[ogygia.nebula]\ncert_file = "/etc/nebula/host.crt"\n`);

  async function publishOnce(host: string, root: string): Promise<void> {
    const result = await runCli(
      ["publish", "--once", "--root", root, "--config", await hostConfig()],
      { env: { OGYGIA_HOSTNAME: host } },
    );
    expect(result.code, result.stderr).toBe(0);
  }

  it("publishes each host's facts, and status shows time left, unknown CAs and conflicts", async () => {
    const roots: Record<string, string> = {};
    for (const host of ["web01", "db01", "dup01", "rogue01"]) {
      roots[host] = path.join(dir, `${harness.kind}-${host}`);
    }
    const web01 = await hostCertificate({
      ca: trusted,
      name: "web01",
      ip: "198.18.7.1/24",
      groups: "web,prod",
      root: roots.web01 ?? "",
    });
    await hostCertificate({
      ca: trusted,
      name: "db01",
      ip: "198.18.7.2/24",
      root: roots.db01 ?? "",
    });
    await hostCertificate({
      ca: trusted,
      name: "dup01",
      ip: "198.18.7.2/24",
      root: roots.dup01 ?? "",
    });
    await hostCertificate({
      ca: rogue,
      name: "rogue01",
      ip: "198.18.7.9/24",
      root: roots.rogue01 ?? "",
    });
    for (const [host, root] of Object.entries(roots)) await publishOnce(host, root);

    const published = JSON.parse(
      (await server.get(`${namespace}/web01/nebula`)) ?? "null",
    ) as Record<string, unknown>;
    expect(published).toMatchObject({
      name: "web01",
      address: "198.18.7.1/24",
      groups: ["web", "prod"],
      fingerprint: await fingerprint(web01),
      ca_fingerprint: await fingerprint(path.join(trusted, "ca.crt")),
    });
    expect(Object.keys(published)).not.toContain("publicKey");

    // Values written by hand: one with under a third of its lifetime left, one not facts.
    const now = Date.now();
    await server.put([
      [
        `${namespace}/old01/nebula`,
        JSON.stringify({
          name: "old01",
          address: "198.18.7.3/24",
          groups: [],
          not_before: new Date(now - 10 * 3600_000).toISOString(),
          not_after: new Date(now + 3600_000).toISOString(),
          fingerprint: "a".repeat(64),
          ca_fingerprint: published.ca_fingerprint as string,
        }),
      ],
      [`${namespace}/junk01/nebula`, '{"name":"junk01","address":"not an address"}'],
    ]);

    const operator = await writeConfig(
      `${backendSection}[ogygia.nebula]\nca_files = ["${path.join(trusted, "ca.crt")}"]\n` +
        `ca_dir = "${path.join(dir, "no-ca-here")}"\n`,
    );
    const status = await runCli(["nebula", "status", "--json", "--config", operator]);
    expect(status.code, status.stderr).toBe(1);
    const report = JSON.parse(status.stdout) as StatusJson;
    expect(report.caChecked).toBe(true);
    const byHost = Object.fromEntries(report.certificates.map((c) => [c.host, c]));
    expect(Object.keys(byHost).sort()).toEqual([
      "db01",
      "dup01",
      "junk01",
      "old01",
      "rogue01",
      "web01",
    ]);
    expect(byHost.web01).toMatchObject({
      address: "198.18.7.1/24",
      groups: ["web", "prod"],
      level: "ok",
    });
    expect(byHost.web01?.remainingMs).toBeGreaterThan(11 * 3600_000);
    expect(byHost.old01?.level).toBe("warning");
    expect(byHost.old01?.reasons.join()).toMatch(/left of 11h/);
    expect(byHost.rogue01?.level).toBe("critical");
    expect(byHost.rogue01?.reasons.join()).toContain("signed by an unknown CA");
    expect(byHost.junk01).toMatchObject({
      level: "critical",
      reasons: ["its published nebula value has a bad address"],
    });
    expect(report.conflicts).toEqual([{ address: "198.18.7.2", hosts: ["db01", "dup01"] }]);
    expect(byHost.db01?.reasons[0]).toBe("address 198.18.7.2 also given to dup01");

    const table = await runCli(["nebula", "status", "--config", operator]);
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(/^HOST\s+ADDRESS\s+GROUPS\s+EXPIRES\s+STATE$/m);
    expect(table.stdout).toMatch(
      /^web01 \(offline\)\s+198\.18\.7\.1\/24\s+web,prod\s+in 1[01]h \d+m\s+ok$/m,
    );
    expect(table.stdout).toContain("address conflict: 198.18.7.2 is given to db01, dup01");

    // Without a CA known here, issuers are not checked, and said so.
    const unchecked = await writeConfig(
      `${backendSection}[ogygia.nebula]\nca_dir = "${path.join(dir, "no-ca-here")}"\n`,
    );
    const blind = await runCli(["nebula", "status", "--config", unchecked]);
    expect(blind.stdout).toContain("issuers not checked: no CA known here");
  });

  it("the running publisher republishes a renewed certificate, and deletes the key of a missing one", async () => {
    const root = path.join(dir, `${harness.kind}-live01`);
    const first = await hostCertificate({ ca: trusted, name: "live01", ip: "198.18.8.1/24", root });
    const firstPrint = await fingerprint(first);
    const publisher = startPublisher({ config: await hostConfig(), root, host: "live01" });
    try {
      const key = `${namespace}/live01/nebula`;
      const published = async (): Promise<string | undefined> => {
        const text = await server.get(key);
        return text === null
          ? undefined
          : (JSON.parse(text) as { fingerprint: string }).fingerprint;
      };
      await waitFor(
        `the first certificate published\n${publisher.output()}`,
        async () => ((await published()) === firstPrint ? true : undefined),
        { timeoutMs: 20_000 },
      );
      const renewed = await hostCertificate({
        ca: trusted,
        name: "live01",
        ip: "198.18.8.1/24",
        duration: "6h",
        root,
      });
      const renewedPrint = await fingerprint(renewed);
      expect(renewedPrint).not.toBe(firstPrint);
      // The resync interval is 300 s: only the watch can publish it this soon.
      await waitFor(
        "the renewed certificate published",
        async () => ((await published()) === renewedPrint ? true : undefined),
        { timeoutMs: 20_000 },
      );
      await writeFile(renewed, "not a certificate\n");
      await waitFor(
        "the unreadable certificate's key deleted",
        async () => ((await server.get(key)) === null ? true : undefined),
        { timeoutMs: 20_000 },
      );
      expect(publisher.output()).toContain("host.crt ([ogygia.nebula] cert_file)");
      expect(await readFile(renewed, "utf8")).toBe("not a certificate\n");
    } finally {
      await publisher.stop();
    }
  });
});
