/**
 * `ogygia doctor` run as a separate process against each registered
 * backend's real server, a real ogygia-irisd and the real Nix's
 * configuration (`nix show-config`, steered with NIX_CONFIG): each check's
 * ok case and its failures (an endpoint closed, one hung, a wrong
 * namespace, a host name spelled differently, a publisher stopped, irisd
 * missing from Nix's substituters or not running, a dead peer).
 */

import { writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli, type CliResult } from "./helpers/cli.js";
import { startBlackhole } from "./helpers/fake-peer.js";
import { FLEET_HARNESSES, type FleetServer } from "./helpers/fleet.js";
import { startIrisd, stopAllIrisd, writeIrisdConfig, type IrisdProcess } from "./helpers/irisd.js";
import {
  addToStore,
  generateKeys,
  makeChrootStore,
  uniqueSalt,
  type TestKeys,
} from "./helpers/nix.js";
import { freePort, removeDir, tempDir } from "./helpers/process.js";
import { makeSystemRoot, writeConfig, type SystemRoot } from "./helpers/system-root.js";

const REV = "a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d0";
const HOST = "web01.example.com";

interface Check {
  id: string;
  title: string;
  status: "ok" | "warn" | "fail";
  found: string;
  fix?: string;
}

interface Doctor {
  result: CliResult;
  ok: boolean;
  checks: Check[];
  byId: (id: string) => Check;
}

let dir: string;
let sys: SystemRoot;
let keys: TestKeys;
let irisd: IrisdProcess;
let blackhole: Awaited<ReturnType<typeof startBlackhole>> | undefined;
let counter = 0;

beforeAll(async () => {
  dir = await tempDir("doctor");
  sys = await makeSystemRoot({ current: REV, booted: REV, nextboot: REV });
  keys = await generateKeys(dir, "doctor-fleet-1");
  const marker = path.join(dir, "marker");
  await writeFile(marker, uniqueSalt("doctor"));
  const store = await makeChrootStore([await addToStore(marker)], {
    root: path.join(dir, "store"),
  });
  irisd = await startIrisd({ storeRoot: store.root, trustedKeys: [keys.publicKey] });
  blackhole = await startBlackhole();
}, 120_000);

afterAll(async () => {
  await stopAllIrisd();
  await blackhole?.stop();
  await sys.remove();
  await removeDir(dir);
});

/** Nix's configuration as a host that uses irisd has it. */
function nixUsing(url: string, trusted: readonly string[]): string {
  return `substituters = ${url}\ntrusted-public-keys = ${trusted.join(" ")}\n`;
}

/** Runs `doctor --json`; irisd's configuration trusts the fleet's key and names `peers`. */
async function doctor(env: Record<string, string>, peers: string[] = []): Promise<Doctor> {
  const irisdConfig = await writeIrisdConfig(
    `[trust]\ntrusted_keys = ["${keys.publicKey}"]\n[peers]\nurls = ${JSON.stringify(peers)}\n`,
  );
  const result = await runCli(["doctor", "--json", "--root", sys.root], {
    env: {
      OGYGIA_HOSTNAME: HOST,
      OGYGIA_IRISD_URL: irisd.url,
      OGYGIA_IRISD_CONFIG: irisdConfig,
      NIX_CONFIG: nixUsing(irisd.url, [keys.publicKey]),
      ...env,
    },
  });
  const report = JSON.parse(result.stdout) as { ok: boolean; checks: Check[] };
  return {
    result,
    ...report,
    byId: (id) => {
      const check = report.checks.find((c) => c.id === id);
      if (check === undefined) throw new Error(`no check ${id} in ${result.stdout}`);
      return check;
    },
  };
}

describe.each(FLEET_HARNESSES)("ogygia doctor with $label", (harness) => {
  let server: FleetServer;

  beforeAll(async () => {
    server = await harness.start();
  }, 60_000);

  afterAll(async () => {
    await server.stop();
  });

  /** A fresh namespace holding `hosts`, and a config naming `endpoints` (default: the server). */
  async function fleet(
    hosts: Record<string, Record<string, string>>,
    endpoints: string[] = [server.endpoint],
  ): Promise<{ config: string; namespace: string }> {
    counter += 1;
    const namespace = `/doctor-${process.pid}-${counter}/versions`;
    await server.put(
      Object.entries(hosts).flatMap(([host, values]) =>
        Object.entries(values).map(([field, value]): [string, string] => [
          `${namespace}/${host}/${field}`,
          value,
        ]),
      ),
    );
    const section = harness.kind === "etcd" ? "[ogygia.etcd]" : "[ogygia.zookeeper]";
    const config = await writeConfig(
      `${section}\nendpoints = ${JSON.stringify(endpoints)}\nnamespace = "${namespace}"\ntimeout_seconds = 2\n`,
    );
    return { config, namespace };
  }

  const alive = (): Record<string, string> => ({
    current: REV,
    booted: REV,
    nextboot: REV,
    alive: "1",
    updated_at: new Date().toISOString(),
  });

  it("passes every check when the host publishes and Nix uses irisd", async () => {
    const { config } = await fleet({ [HOST]: alive(), "db01.example.com": alive() });
    const d = await doctor({ OGYGIA_CONFIG: config }, [irisd.url]);
    expect(d.result.stderr).toBe("");
    expect(d.checks.filter((c) => c.status !== "ok")).toEqual([]);
    expect(d.ok).toBe(true);
    expect(d.result.code).toBe(0);
    expect(d.byId("config").found).toContain(`fleet in ${harness.label}`);
    expect(d.byId(`endpoint ${server.endpoint}`).found).toMatch(
      /^reachable in \d+ ms; 2 hosts under /,
    );
    expect(d.byId("hostname").found).toBe(
      `${HOST} (from OGYGIA_HOSTNAME); the fleet has it as ${HOST}`,
    );
    expect(d.byId("publisher").found).toMatch(
      new RegExp(`^${HOST} is alive; updated_at \\d+ s ago$`),
    );
    expect(d.byId("revisions").found).toBe(
      `current ${REV.slice(0, 12)}, booted ${REV.slice(0, 12)}, nextboot ${REV.slice(0, 12)}`,
    );
    expect(d.byId("irisd.substituter").found).toBe(
      `${irisd.url} is a substituter and Nix trusts the fleet's key`,
    );
    expect(d.byId(`peer ${irisd.url}`).status).toBe("ok");
  });

  it("checks each endpoint alone: a closed one and a hung one fail, the live one answers", async () => {
    const closed = harness.endpointAt(await freePort());
    const hung = harness.endpointAt(blackhole?.port ?? 0);
    const { config } = await fleet({ [HOST]: alive() }, [closed, hung, server.endpoint]);
    const d = await doctor({ OGYGIA_CONFIG: config });
    expect(d.byId(`endpoint ${closed}`).status).toBe("fail");
    const hungCheck = d.byId(`endpoint ${hung}`);
    expect(hungCheck.status).toBe("fail");
    expect(hungCheck.fix).toContain(`${harness.label} runs at ${hung}`);
    expect(d.byId(`endpoint ${server.endpoint}`).status).toBe("ok");
    // The fleet was read from the live endpoint.
    expect(d.byId("publisher").status).toBe("ok");
    expect(d.ok).toBe(false);
    expect(d.result.code).toBe(1);
  });

  it("warns when nothing is published under the namespace", async () => {
    const { config } = await fleet({});
    const d = await doctor({ OGYGIA_CONFIG: config });
    const check = d.byId(`endpoint ${server.endpoint}`);
    expect(check.status).toBe("warn");
    expect(check.found).toMatch(/but no host has published under \/doctor-/);
    expect(check.fix).toContain("namespace matches the publishers'");
  });

  it("names the fleet's other spelling of this host's name", async () => {
    const { config } = await fleet({ "web01.corp.example": alive() });
    const d = await doctor({ OGYGIA_CONFIG: config });
    const check = d.byId("hostname");
    expect(check.status).toBe("warn");
    expect(check.found).toBe(
      `${HOST} (from OGYGIA_HOSTNAME); the fleet has no entry for it, but has web01.corp.example`,
    );
    expect(check.fix).toContain("OGYGIA_HOSTNAME=web01.corp.example");
    expect(d.byId("publisher").status).toBe("warn");
  });

  it("fails when this host's publisher stopped (no alive key)", async () => {
    const { alive: _gone, ...rest } = alive();
    const { config } = await fleet({ [HOST]: rest });
    const d = await doctor({ OGYGIA_CONFIG: config });
    const check = d.byId("publisher");
    expect(check.status).toBe("fail");
    expect(check.found).toMatch(new RegExp(`^${HOST} has no alive key`));
    expect(check.fix).toContain("ogygia.publish.enable");
    expect(d.result.code).toBe(1);
  });
});

describe("ogygia doctor and ogygia-irisd", () => {
  it("fails when Nix does not use the running irisd, and names the option", async () => {
    const d = await doctor({ NIX_CONFIG: "substituters = https://cache.example.org\n" });
    const check = d.byId("irisd.substituter");
    expect(check.status).toBe("fail");
    expect(check.found).toBe(
      `${irisd.url} is not among Nix's substituters (https://cache.example.org)`,
    );
    expect(check.fix).toContain("ogygia.irisd.configureNixDaemon");
    expect(d.byId("irisd").status).toBe("ok");
    expect(d.result.code).toBe(1);
  });

  it("fails when Nix uses irisd but does not trust the fleet's key", async () => {
    const d = await doctor({ NIX_CONFIG: nixUsing(irisd.url, []) });
    const check = d.byId("irisd.substituter");
    expect(check.status).toBe("fail");
    expect(check.found).toContain("Nix does not trust the fleet's key doctor-fleet-1");
  });

  it("warns, without failing, when no irisd runs; a dead peer is a warning too", async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const d = await doctor(
      { OGYGIA_IRISD_URL: nowhere, NIX_CONFIG: "substituters = https://cache.example.org\n" },
      [nowhere],
    );
    expect(d.byId("irisd")).toMatchObject({
      status: "warn",
      found: `not reachable: connect ECONNREFUSED ${nowhere.slice("http://".length)}`,
    });
    expect(d.byId("irisd.substituter").status).toBe("warn");
    expect(d.byId(`peer ${nowhere}`).status).toBe("warn");
    // No configuration: local-only mode is a warning, not a failure.
    expect(d.byId("config").status).toBe("warn");
    expect(d.ok).toBe(true);
    expect(d.result.code).toBe(0);
  });

  it("prints the checks as text with the fixes and a summary", async () => {
    const result = await runCli(["doctor", "--root", sys.root], {
      env: {
        OGYGIA_HOSTNAME: HOST,
        OGYGIA_IRISD_URL: irisd.url,
        NIX_CONFIG: "substituters = https://cache.example.org\n",
      },
    });
    expect(result.code).toBe(1);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines).toContain(
      `FAIL  Nix uses ogygia-irisd: ${irisd.url} is not among Nix's substituters (https://cache.example.org)`,
    );
    expect(lines.at(-1)).toMatch(/^\d+ ok, \d+ warnings?, 1 failed$/);
  });
});
