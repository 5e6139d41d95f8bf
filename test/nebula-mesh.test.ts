/**
 * A real Nebula mesh managed with ogygia: three network namespaces joined
 * by veth pairs on a bridge (underlay 198.51.100.0/24, inside the
 * namespaces only), Debian's `nebula` 1.6 in each, and real etcd handing
 * out the overlay addresses (`sign --ip auto`). A lighthouse and two nodes
 * form the mesh; an ogygia-irisd in each namespace listens on its Nebula
 * address and a real Nix client copies a closure through the overlay. The
 * nodes' one-minute certificates go from ok to warning to critical in
 * `nebula status`, `rekey` renews them, and the mesh keeps working after
 * Nebula reloads. Every namespace, interface and process made here is
 * removed afterwards, also when a step fails. Needs root (CI runs as root).
 */

import { execFile } from "node:child_process";
import { copyFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";
import { IRISD_BIN, irisdConfigText } from "./helpers/irisd.js";
import { nixVerify, pathInfoJson, signedClosureStore, makeChrootStore } from "./helpers/nix.js";
import {
  removeDir,
  startProcess,
  tempDir,
  waitFor,
  type ManagedProcess,
} from "./helpers/process.js";
import { writeConfig } from "./helpers/system-root.js";

const exec = promisify(execFile);

/** Namespace names carry the test's pid, so a crashed run's leftovers can be told apart. */
const PREFIX = "ogyneb";
const tag = `${PREFIX}${process.pid}`;
const HOSTS = ["lh", "n2", "n3"] as const;
type Host = (typeof HOSTS)[number];
const netns = (host: Host): string => `${tag}${host}`;
const UNDERLAY: Record<Host, string> = {
  lh: "198.51.100.1",
  n2: "198.51.100.2",
  n3: "198.51.100.3",
};
const SUBNET = "198.18.42.0/24";
const IRISD_PORT = 35742;

const processes: ManagedProcess[] = [];

async function ip(...args: string[]): Promise<string> {
  return (await exec("ip", args)).stdout;
}

async function ourNamespaces(): Promise<string[]> {
  const listed = await ip("netns", "list");
  return listed
    .split("\n")
    .map((line) => line.split(" ")[0] ?? "")
    .filter((name) => name.startsWith(tag));
}

/** Removes namespaces left by runs whose process is gone (a SIGKILLed test). */
async function removeStaleNamespaces(): Promise<void> {
  const listed = await ip("netns", "list");
  for (const name of listed.split("\n").map((l) => l.split(" ")[0] ?? "")) {
    const pid = /^ogyneb(\d+)/.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid) continue;
    try {
      process.kill(Number(pid), 0);
    } catch {
      await ip("netns", "del", name).catch(() => undefined);
    }
  }
}

/** Stops every process and deletes every namespace (with the interfaces in it). */
async function teardown(): Promise<void> {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  for (const name of await ourNamespaces()) await ip("netns", "del", name);
}

/** lh holds a bridge; n2 and n3 hang on it by veth pairs. */
async function makeUnderlay(): Promise<void> {
  for (const host of HOSTS) await ip("netns", "add", netns(host));
  const lh = netns("lh");
  await ip("-n", lh, "link", "add", "br0", "type", "bridge");
  await ip("-n", lh, "addr", "add", `${UNDERLAY.lh}/24`, "dev", "br0");
  await ip("-n", lh, "link", "set", "br0", "up");
  for (const host of ["n2", "n3"] as const) {
    const ns = netns(host);
    await ip(
      "-n",
      lh,
      "link",
      "add",
      `v${host}`,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      ns,
    );
    await ip("-n", lh, "link", "set", `v${host}`, "master", "br0");
    await ip("-n", lh, "link", "set", `v${host}`, "up");
    await ip("-n", ns, "addr", "add", `${UNDERLAY[host]}/24`, "dev", "eth0");
    await ip("-n", ns, "link", "set", "eth0", "up");
  }
  for (const host of HOSTS) await ip("-n", netns(host), "link", "set", "lo", "up");
}

function inNamespace(host: Host, command: string, args: readonly string[]): ManagedProcess {
  const proc = startProcess("ip", ["netns", "exec", netns(host), command, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: "C.UTF-8" },
  });
  processes.push(proc);
  return proc;
}

/** `waitFor`, with a process's output (read when it failed) in the error. */
async function waitShowing<T>(
  what: string,
  proc: ManagedProcess | undefined,
  check: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs: number; intervalMs?: number },
): Promise<T> {
  try {
    return await waitFor(what, check, options);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${proc?.output() ?? ""}`, { cause: err });
  }
}

/** Nebula's YAML (JSON is YAML) for one host. */
function nebulaConfig(options: { host: Host; dir: string; lighthouse: string }): string {
  const isLighthouse = options.host === "lh";
  const any = [{ port: "any", proto: "any", host: "any" }];
  return JSON.stringify({
    pki: {
      ca: path.join(options.dir, "ca.crt"),
      cert: path.join(options.dir, "host.crt"),
      key: path.join(options.dir, "keys/host.key"),
    },
    static_host_map: isLighthouse ? {} : { [options.lighthouse]: [`${UNDERLAY.lh}:4242`] },
    lighthouse: {
      am_lighthouse: isLighthouse,
      interval: 5,
      hosts: isLighthouse ? [] : [options.lighthouse],
    },
    listen: { host: "0.0.0.0", port: 4242 },
    punchy: { punch: true },
    tun: { dev: `neb${options.host}`, mtu: 1300 },
    logging: { level: "info" },
    firewall: { outbound: any, inbound: any },
  });
}

interface StatusJson {
  certificates: {
    host: string;
    address: string | null;
    groups: string[];
    level: string;
    reasons: string[];
  }[];
  conflicts: unknown[];
}

let dir: string;
let etcd: EtcdServer;

beforeAll(async () => {
  expect(process.getuid?.(), "network namespaces need root").toBe(0);
  await removeStaleNamespaces();
  dir = await tempDir("nebula-mesh");
  etcd = await startEtcd();
}, 60_000);

afterAll(async () => {
  await teardown();
  await etcd.stop();
  await removeDir(dir);
}, 60_000);

describe("a Nebula mesh of three namespaces, managed with ogygia", () => {
  it("forms from keys, registry addresses and signed certificates; carries nix copy; renews expiring certificates", async () => {
    try {
      const caDir = path.join(dir, "ca");
      const certDir = path.join(dir, "certs");
      const config = await writeConfig(
        `[ogygia.etcd]\nendpoints = ["${etcd.endpoint}"]\nnamespace = "/mesh-${process.pid}/versions"\n\n` +
          `[ogygia.nebula]\nnetwork = "mesh"\nsubnet = "${SUBNET}"\nca_dir = "${caDir}"\ncert_dir = "${certDir}"\n`,
      );
      const cli = async (args: string[], host?: string) => {
        const result = await runCli(args, {
          env: { OGYGIA_CONFIG: config, ...(host === undefined ? {} : { OGYGIA_HOSTNAME: host }) },
        });
        return result;
      };

      // The CA on the operator's machine; a key pair on each host.
      const ca = await cli([
        "nebula",
        "ca",
        "init",
        "--name",
        "mesh",
        "--duration",
        "24h",
        "--out",
        caDir,
      ]);
      expect(ca.code, ca.stderr).toBe(0);
      const hostDir = (host: Host) => path.join(dir, host);
      for (const host of HOSTS) {
        const keygen = await cli(["nebula", "keygen", "--dir", path.join(hostDir(host), "keys")]);
        expect(keygen.code, keygen.stderr).toBe(0);
        await copyFile(path.join(caDir, "ca.crt"), path.join(hostDir(host), "ca.crt"));
      }

      // Addresses from etcd: the lighthouse first, then both nodes at once.
      const sign = async (host: Host, extra: string[]) => {
        const result = await cli([
          "nebula",
          "sign",
          host,
          "--pub",
          path.join(hostDir(host), "keys/host.pub"),
          "--ip",
          "auto",
          "--json",
          ...extra,
        ]);
        expect(result.code, result.stderr).toBe(0);
        const signed = JSON.parse(result.stdout) as {
          address: string;
          kept: boolean;
          certificate: string;
        };
        await copyFile(signed.certificate, path.join(hostDir(host), "host.crt"));
        return signed;
      };
      const lh = await sign("lh", ["--groups", "lighthouse", "--duration", "1h"]);
      const [n2, n3] = await Promise.all([
        sign("n2", ["--groups", "web", "--duration", "1h"]),
        sign("n3", ["--groups", "web,cache", "--duration", "1h"]),
      ]);
      expect(lh.address).toBe("198.18.42.1/24");
      expect([n2.address, n3.address].sort()).toEqual(["198.18.42.2/24", "198.18.42.3/24"]);
      const overlay: Record<Host, string> = {
        lh: "198.18.42.1",
        n2: n2.address.split("/")[0] ?? "",
        n3: n3.address.split("/")[0] ?? "",
      };

      // The mesh: nebula in each namespace, its tun address up.
      await makeUnderlay();
      const nebula: Partial<Record<Host, ManagedProcess>> = {};
      for (const host of HOSTS) {
        const file = path.join(hostDir(host), "nebula.yml");
        await writeFile(file, nebulaConfig({ host, dir: hostDir(host), lighthouse: overlay.lh }));
        nebula[host] = inNamespace(host, "nebula", ["-config", file]);
        await waitShowing(
          `nebula's tun address in ${host}`,
          nebula[host],
          async () =>
            (
              await ip("-n", netns(host), "addr", "show", "dev", `neb${host}`).catch(() => "")
            ).includes(`inet ${overlay[host]}/24`)
              ? true
              : undefined,
          { timeoutMs: 20_000, intervalMs: 100 },
        );
      }

      // Hosts publish their certificates' facts; the operator sees the fleet.
      const publishFacts = async (host: Host): Promise<void> => {
        const hostConfig = await writeConfig(
          `[ogygia.etcd]\nendpoints = ["${etcd.endpoint}"]\nnamespace = "/mesh-${process.pid}/versions"\n\n` +
            `[ogygia.nebula]\ncert_file = "${path.join(hostDir(host), "host.crt")}"\n`,
        );
        const published = await runCli(["publish", "--once", "--config", hostConfig], {
          env: { OGYGIA_HOSTNAME: host },
        });
        expect(published.code, published.stderr).toBe(0);
      };
      for (const host of HOSTS) await publishFacts(host);
      /** Installs a new certificate: Nebula reloads it on SIGHUP, the host republishes. */
      const reloadCount = (host: Host): number =>
        nebula[host]?.output().split("Client cert refreshed from disk").length ?? 0;
      const install = async (host: Host, certificate: string): Promise<void> => {
        const before = reloadCount(host);
        await copyFile(certificate, path.join(hostDir(host), "host.crt"));
        nebula[host]?.child.kill("SIGHUP");
        await publishFacts(host);
        await waitShowing(
          `nebula in ${host} to reload its certificate`,
          nebula[host],
          () => (reloadCount(host) > before ? true : undefined),
          { timeoutMs: 20_000 },
        );
      };
      const statusOf = async () => {
        const result = await cli(["nebula", "status", "--json"]);
        const report = JSON.parse(result.stdout) as StatusJson;
        return {
          code: result.code,
          report,
          byHost: Object.fromEntries(report.certificates.map((c) => [c.host, c])),
        };
      };
      const first = await statusOf();
      expect(first.report.conflicts).toEqual([]);
      expect(first.byHost.lh).toMatchObject({
        address: "198.18.42.1/24",
        groups: ["lighthouse"],
        level: "ok",
      });
      expect(first.byHost.n3).toMatchObject({ address: n3.address, groups: ["web", "cache"] });
      expect(first.byHost.n2).toMatchObject({ address: n2.address, level: "ok" });

      // irisd on each Nebula address; a Nix client in n2 copies from n3's through the overlay.
      const { closure, keys, store } = await signedClosureStore(dir, "nebula-mesh", {
        storeName: "n3-store",
      });
      const empty = await makeChrootStore([closure.leaf], { root: path.join(dir, "leaf-store") });
      for (const host of HOSTS) {
        const file = path.join(hostDir(host), "irisd.toml");
        await writeFile(
          file,
          irisdConfigText({
            storeRoot: host === "n3" ? store.root : empty.root,
            listen: [`${overlay[host]}:${IRISD_PORT}`],
          }),
        );
        const irisd = inNamespace(host, process.execPath, [IRISD_BIN, "--config", file]);
        await waitShowing(
          `irisd listening in ${host}`,
          irisd,
          () => (irisd.output().includes('"msg":"listening"') ? true : undefined),
          { timeoutMs: 20_000 },
        );
      }
      const overlayGet = async (from: Host, to: Host): Promise<string> =>
        (
          await exec("ip", [
            "netns",
            "exec",
            netns(from),
            "curl",
            "-sf",
            "--max-time",
            "5",
            `http://${overlay[to]}:${IRISD_PORT}/nix-cache-info`,
          ])
        ).stdout;
      for (const [from, to] of [
        ["n2", "lh"],
        ["n3", "lh"],
        ["n2", "n3"],
        ["lh", "n2"],
      ] as const) {
        await waitShowing(
          `${from} reaching ${to}'s irisd over Nebula`,
          nebula[from],
          async () =>
            (await overlayGet(from, to)).includes("StoreDir: /nix/store") ? true : undefined,
          { timeoutMs: 30_000, intervalMs: 250 },
        );
      }
      const client = path.join(dir, "n2-client");
      await exec(
        "ip",
        [
          "netns",
          "exec",
          netns("n2"),
          "nix",
          "copy",
          "--from",
          `http://${overlay.n3}:${IRISD_PORT}`,
          "--to",
          client,
          "--option",
          "trusted-public-keys",
          keys.publicKey,
          closure.top,
        ],
        {
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            NIX_CONFIG: "experimental-features = nix-command\nsandbox = false\nsubstituters =",
            XDG_CACHE_HOME: path.join(dir, "n2-nix-cache"),
          },
        },
      );
      const copied = await pathInfoJson([closure.top], { store: client, recursive: true });
      expect(copied.map((p) => p.path).sort()).toEqual([...closure.paths].sort());
      await nixVerify({ store: client, paths: [closure.top], trustedPublicKeys: [keys.publicKey] });

      // Re-signed for one minute (the registry keeps their addresses) and reloaded:
      // a warning under a third left, critical once expired.
      const [short2, short3] = await Promise.all([
        sign("n2", ["--groups", "web", "--duration", "1m"]),
        sign("n3", ["--groups", "web,cache", "--duration", "1m"]),
      ]);
      expect([short2.address, short2.kept, short3.address, short3.kept]).toEqual([
        n2.address,
        true,
        n3.address,
        true,
      ]);
      await install("n2", short2.certificate);
      await install("n3", short3.certificate);
      await waitFor(
        "n2's certificate to warn",
        async () => ((await statusOf()).byHost.n2?.level === "warning" ? true : undefined),
        { timeoutMs: 70_000, intervalMs: 1000 },
      );
      const expired = await waitFor(
        "n2's and n3's certificates to expire",
        async () => {
          const status = await statusOf();
          return status.byHost.n2?.level === "critical" && status.byHost.n3?.level === "critical"
            ? status
            : undefined;
        },
        { timeoutMs: 70_000, intervalMs: 1000 },
      );
      expect(expired.code).toBe(1);
      expect(expired.byHost.n2?.reasons.join()).toMatch(/^expired /);
      expect(expired.byHost.lh?.level).toBe("ok");

      // rekey renews both (not the lighthouse), same addresses and groups.
      const rekey = await cli(["nebula", "rekey", "--duration", "1h", "--json"]);
      expect(rekey.code, rekey.stderr).toBe(0);
      const renewed = (
        JSON.parse(rekey.stdout) as {
          changes: { host: string; address: string; groups: string[]; certificate: string }[];
        }
      ).changes;
      expect(renewed.map((c) => [c.host, c.address]).sort()).toEqual(
        [
          ["n2", n2.address],
          ["n3", n3.address],
        ].sort(),
      );
      for (const change of renewed) await install(change.host as Host, change.certificate);
      const after = await statusOf();
      expect(after.code).toBe(0);
      expect(after.report.certificates.map((c) => [c.host, c.level])).toEqual([
        ["lh", "ok"],
        ["n2", "ok"],
        ["n3", "ok"],
      ]);
      // The mesh keeps working: new connections both ways through the overlay.
      for (const [from, to] of [
        ["n2", "n3"],
        ["n3", "n2"],
        ["n2", "lh"],
      ] as const) {
        await waitShowing(
          `${from} reaching ${to} after the reload`,
          nebula[from],
          async () => ((await overlayGet(from, to)).includes("StoreDir") ? true : undefined),
          { timeoutMs: 30_000, intervalMs: 250 },
        );
      }
      for (const host of HOSTS) expect(nebula[host]?.child.exitCode).toBeNull();
    } finally {
      await teardown();
    }
    // Nothing of the test is left: no namespace (their interfaces went with them), no process.
    expect(await ourNamespaces()).toEqual([]);
    for (const proc of processes)
      expect(proc.child.exitCode ?? proc.child.signalCode).not.toBeNull();
    expect((await ip("link", "show")).includes(tag)).toBe(false);
  }, 300_000);

  it("never gives one address to two hosts signed at once, round after round", async () => {
    const caDir = path.join(dir, "race-ca");
    const config = await writeConfig(
      `[ogygia.etcd]\nendpoints = ["${etcd.endpoint}"]\nnamespace = "/race-${process.pid}/versions"\n\n` +
        `[ogygia.nebula]\nnetwork = "race"\nsubnet = "198.19.0.0/16"\nca_dir = "${caDir}"\n` +
        `cert_dir = "${path.join(dir, "race-certs")}"\n`,
    );
    const env = { OGYGIA_CONFIG: config };
    expect(
      (await runCli(["nebula", "ca", "init", "--name", "race", "--out", caDir], { env })).code,
    ).toBe(0);
    const keys = path.join(dir, "race-keys");
    expect((await runCli(["nebula", "keygen", "--dir", keys], { env })).code).toBe(0);
    const seen = new Map<string, string>();
    for (let round = 0; round < 15; round++) {
      const hosts = [`a${round}`, `b${round}`];
      const results = await Promise.all(
        hosts.map((host) =>
          runCli(["nebula", "sign", host, "--pub", path.join(keys, "host.pub"), "--json"], { env }),
        ),
      );
      const addresses = results.map((r, i) => {
        expect(r.code, r.stderr).toBe(0);
        const address = (JSON.parse(r.stdout) as { address: string }).address;
        expect(
          seen.get(address),
          `${address} given to ${hosts[i] ?? "?"} and ${seen.get(address) ?? "?"}`,
        ).toBeUndefined();
        seen.set(address, hosts[i] ?? "");
        return address;
      });
      expect(addresses[0]).not.toBe(addresses[1]);
    }
    expect(seen.size).toBe(30);
  }, 180_000);
});
