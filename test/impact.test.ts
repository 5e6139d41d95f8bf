/**
 * `ogygia diff`, `ogygia who-runs` and `ogygia impact` end to end: real Nix
 * builds three small "NixOS systems" (kernel, initrd and kernel-modules
 * links, unit files under etc/systemd/system, libfoo-1.0 or libfoo-1.1)
 * sharing most of their paths; each of four hosts holds its system in a
 * chroot store served by its own ogygia-irisd; the operator's store holds
 * only system A, and its irisd has the hosts as peers; every host publishes
 * with the real `ogygia publish --once --root` into a real etcd.
 */

import { mkdir, symlink, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { baseEnv, runCli, type CliResult } from "./helpers/cli.js";
import { startEtcd, type EtcdServer } from "./helpers/etcd.js";
import { startIrisd, stopAllIrisd, type IrisdProcess } from "./helpers/irisd.js";
import {
  generateKeys,
  makeChrootStore,
  nix,
  runNix,
  signPaths,
  uniqueSalt,
  type ChrootStore,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";
import { writeConfig } from "./helpers/system-root.js";

const NAMESPACE = "/nixos/impact-test";
type SystemName = "sysA" | "sysB" | "sysC";

let dir: string;
let keys: TestKeys;
let etcd: EtcdServer;
let config: string;
let systems: Record<SystemName, string>;
const stores: ChrootStore[] = [];
let operatorStore: ChrootStore;
let operator: IrisdProcess;
let ghostSystem: string;

function expression(salt: string): string {
  return `let
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; salt = "${salt}";
    builder = "/bin/sh"; PATH = "/usr/bin:/bin"; args = [ "-c" script ];
  };
  glibc = mk "glibc-2.35" "mkdir -p $out/lib; echo glibc > $out/lib/libc.so";
  glibcBin = mk "glibc-2.35-bin" "mkdir -p $out/bin; echo \${glibc} > $out/bin/ldd";
  libfoo = v: mk "libfoo-\${v}" "mkdir -p $out/lib; echo libfoo-\${v} \${glibc} > $out/lib/libfoo.so";
  libbar = mk "libbar-2.0" "mkdir -p $out/lib; echo libbar \${glibc} > $out/lib/libbar.so";
  kernel = v: mk "linux-\${v}" "mkdir $out; echo kernel-\${v} > $out/bzImage";
  modules = v: mk "linux-\${v}-modules" "mkdir -p $out/lib/modules/\${v}; echo m > $out/lib/modules/\${v}/x.ko";
  initrd = v: mk "initrd-linux-\${v}" "mkdir $out; echo initrd-\${v} > $out/initrd";
  unit = file: text: { inherit file; drv = mk "unit-\${file}" "mkdir $out; echo '\${text}' > $out/\${file}"; };
  sys = { name, foo, k, units, extra ? [] }:
    let
      systemUnits = mk "system-units" ("mkdir $out; " + builtins.concatStringsSep " " (map (u: "ln -s \${u.drv}/\${u.file} $out/\${u.file};") units));
      etc = mk "etc" "mkdir -p $out/etc/systemd; ln -s \${systemUnits} $out/etc/systemd/system";
      sw = mk "system-path" ("mkdir -p $out/share/ogygia $out/lib $out/bin; echo rev-\${name} > $out/share/ogygia/build-revision; ln -s \${foo}/lib/libfoo.so $out/lib/; ln -s \${glibcBin}/bin/ldd $out/bin/; " + builtins.concatStringsSep " " (map (p: "ln -s \${p} $out/lib/;") extra));
    in mk "nixos-system-\${name}-23.05" "mkdir $out; ln -s \${kernel k}/bzImage $out/kernel; ln -s \${initrd k}/initrd $out/initrd; ln -s \${modules k} $out/kernel-modules; ln -s \${etc}/etc $out/etc; ln -s \${sw} $out/sw";
  a1 = unit "a.service" "[Service] ExecStart=\${libfoo "1.0"}/bin/a";
  a2 = unit "a.service" "[Service] ExecStart=/bin/a --new";
  b1 = unit "b.service" "[Service] ExecStart=/bin/b";
  c1 = unit "c.service" "[Service] ExecStart=/bin/c";
in {
  sysA = sys { name = "a"; foo = libfoo "1.0"; k = "6.1.0"; units = [ a1 b1 ]; };
  sysB = sys { name = "b"; foo = libfoo "1.1"; k = "6.1.0"; units = [ a2 b1 c1 ]; extra = [ libbar ]; };
  sysC = sys { name = "c"; foo = libfoo "1.0"; k = "6.2.0"; units = [ a1 b1 ]; };
}
`;
}

/** Makes `root` look like a NixOS host running `system` (all three states). */
async function linkStates(root: string, system: string): Promise<void> {
  await mkdir(path.join(root, "run"), { recursive: true });
  await mkdir(path.join(root, "nix/var/nix/profiles"), { recursive: true });
  await symlink(system, path.join(root, "run/current-system"));
  await symlink(system, path.join(root, "run/booted-system"));
  await symlink(system, path.join(root, "nix/var/nix/profiles/system-1-link"));
  await symlink("system-1-link", path.join(root, "nix/var/nix/profiles/system"));
}

async function publish(root: string, host: string): Promise<void> {
  const result = await runCli(["publish", "--once", "--root", root, "--config", config], {
    env: { OGYGIA_HOSTNAME: host },
  });
  if (result.code !== 0) throw new Error(`publish ${host} failed:\n${result.stderr}`);
}

function ogygia(
  args: readonly string[],
  extraEnv: Record<string, string> = {},
): Promise<CliResult> {
  return runCli(
    [...args, "--config", config, "--store", operatorStore.root, "--irisd", operator.url],
    {
      env: { ...baseEnv(), ...extraEnv },
      timeoutMs: 120_000,
    },
  );
}

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the caller names the document's shape
function json<T>(result: CliResult): T {
  return JSON.parse(result.stdout) as T;
}

interface DiffJson {
  changed: { name: string; before: string[]; after: string[] }[];
  added: { name: string; versions: string[] }[];
  removed: { name: string; versions: string[] }[];
  sizeDelta: number;
  before: { narSize: number; paths: number };
  after: { narSize: number; paths: number };
  stats: { irisdRequests: number; localReads: number };
}

/** `nix store diff-closures` lines as `name: v1, v2 → v3` (version changes only, sizes dropped). */
async function nixDiffClosures(a: string, b: string): Promise<Set<string>> {
  const text = await nix(["store", "diff-closures", a, b]);
  const out = new Set<string>();
  // eslint-disable-next-line no-control-regex
  for (const raw of text.replace(/\x1b\[[0-9;]*m/g, "").split("\n")) {
    const match = /^\s*([^:]+): (.+)$/.exec(raw);
    if (match === null) continue;
    const first = (match[2] ?? "").split(/, [+-]\d/)[0] ?? "";
    if (!first.includes("→")) continue;
    const [before = "", after = ""] = first.split(" → ");
    out.add(`${match[1]}: ${canon(before)} → ${canon(after)}`);
  }
  return out;
}

function canon(list: string): string {
  return list.split(", ").sort().join(", ");
}

function show(versions: readonly string[]): string {
  return versions.length === 0 ? "∅" : versions.map((v) => (v === "" ? "ε" : v)).join(", ");
}

function ourVersionChanges(diff: DiffJson): Set<string> {
  const out = new Set<string>();
  for (const c of diff.changed)
    out.add(`${c.name}: ${canon(show(c.before))} → ${canon(show(c.after))}`);
  for (const a of diff.added) out.add(`${a.name}: ∅ → ${canon(show(a.versions))}`);
  for (const r of diff.removed) out.add(`${r.name}: ${canon(show(r.versions))} → ∅`);
  return out;
}

async function closureNarSize(system: string): Promise<number> {
  const infos = JSON.parse(await nix(["path-info", "-r", "--json", system])) as {
    narSize: number;
  }[];
  return infos.reduce((sum, info) => sum + info.narSize, 0);
}

beforeAll(async () => {
  dir = await tempDir("impact");
  const file = path.join(dir, "systems.nix");
  await writeFile(file, expression(uniqueSalt("impact")));
  const built = await runNix("nix-build", [
    file,
    "--no-out-link",
    "-A",
    "sysA",
    "-A",
    "sysB",
    "-A",
    "sysC",
  ]);
  const [a, b, c] = built.stdout.toString("utf8").trim().split("\n");
  if (a === undefined || b === undefined || c === undefined)
    throw new Error("nix-build printed too little");
  systems = { sysA: a, sysB: b, sysC: c };
  keys = await generateKeys(dir, "impact-1");
  etcd = await startEtcd();
  config = await writeConfig(
    [`[ogygia.etcd]`, `endpoints = ["${etcd.endpoint}"]`, `namespace = "${NAMESPACE}"`, ""].join(
      "\n",
    ),
  );
  const hosts: [string, SystemName][] = [
    ["h1", "sysA"],
    ["h2", "sysA"],
    ["h3", "sysB"],
    ["h4", "sysC"],
  ];
  const peers: IrisdProcess[] = [];
  for (const [host, system] of hosts) {
    const store = await makeChrootStore([systems[system]], { root: path.join(dir, host) });
    stores.push(store);
    await signPaths(keys, [systems[system]], { store: store.root });
    await linkStates(store.root, systems[system]);
    await publish(store.root, `${host}.example.com`);
    peers.push(await startIrisd({ storeRoot: store.root }));
  }
  operatorStore = await makeChrootStore([systems.sysA], { root: path.join(dir, "operator") });
  operator = await startIrisd({
    storeRoot: operatorStore.root,
    peers: peers.map((p) => p.url),
    trustedKeys: [keys.publicKey],
    cache: { dir: path.join(dir, "operator-cache") },
  });
  // A host whose system exists on its own disk only: no store database, no irisd.
  ghostSystem = `/nix/store/${"0".repeat(31)}1-nixos-system-ghost-23.05`;
  const ghostRoot = path.join(dir, "ghost");
  await mkdir(path.join(ghostRoot, ghostSystem, "sw/share/ogygia"), { recursive: true });
  await linkStates(ghostRoot, ghostSystem);
}, 300_000);

afterAll(async () => {
  await stopAllIrisd();
  await etcd.stop();
  await removeDir(dir);
});

describe("publishing system paths", () => {
  it("publishes each state's system path, shown by status --json", async () => {
    expect(await etcd.client.get(`${NAMESPACE}/h3.example.com/current_system`)).toBe(systems.sysB);
    expect(await etcd.client.get(`${NAMESPACE}/h4.example.com/nextboot_system`)).toBe(systems.sysC);
    const status = await runCli(["status", "--json", "--config", config]);
    const doc = json<{ hosts: { host: string; currentSystem: string | null }[] }>(status);
    const h1 = doc.hosts.find((h) => h.host === "h1.example.com");
    expect(h1?.currentSystem).toBe(systems.sysA);
  });
});

describe("ogygia diff", () => {
  it.each([
    ["sysA", "sysB"],
    ["sysA", "sysC"],
    ["sysC", "sysB"],
  ] as const)(
    "%s → %s: the version changes of nix store diff-closures, sizes from NAR sizes",
    async (a, b) => {
      const result = await ogygia(["diff", systems[a], systems[b], "--json"]);
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      const diff = json<DiffJson>(result);
      expect(ourVersionChanges(diff)).toEqual(await nixDiffClosures(systems[a], systems[b]));
      expect(diff.sizeDelta).toBe(
        (await closureNarSize(systems[b])) - (await closureNarSize(systems[a])),
      );
      expect(diff.before.narSize).toBe(await closureNarSize(systems[a]));
    },
  );

  it("reads a system this host lacks through irisd, and names hosts as references", async () => {
    const result = await ogygia(["diff", "h1", "h3.example.com:current", "--json"]);
    expect(result.code).toBe(0);
    const diff = json<DiffJson>(result);
    expect(diff.changed).toContainEqual({ name: "libfoo", before: ["1.0"], after: ["1.1"] });
    expect(diff.added).toContainEqual({ name: "libbar", versions: ["2.0"] });
    expect(diff.stats.irisdRequests).toBeGreaterThan(0);
    expect(diff.stats.localReads).toBeGreaterThan(0);
  });

  it("prints nvd's sections", async () => {
    const result = await ogygia(["diff", "h1", "h3"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Version changes:");
    expect(result.stdout).toMatch(/\[U\]\s+#1\s+libfoo\s+1\.0 -> 1\.1/);
    expect(result.stdout).toMatch(/Added packages:\n\s+\[A\]\s+#1\s+libbar\s+2\.0/);
    expect(result.stdout).toMatch(/Closure size: \d+ -> \d+ \(\d+ paths added, \d+ paths removed/);
  });
});

interface WhoRunsJson {
  hosts: { host: string; matches: { state: string; paths: string[] }[] }[];
  unreadable: { host: string; reason: string }[];
}

describe("ogygia who-runs", () => {
  it("lists exactly the hosts that run libfoo-1.0, reading the others' closures through irisd", async () => {
    const result = await ogygia(["who-runs", "libfoo-1.0", "--json"]);
    expect(result.code).toBe(0);
    const doc = json<WhoRunsJson>(result);
    expect(doc.hosts.map((h) => h.host)).toEqual([
      "h1.example.com",
      "h2.example.com",
      "h4.example.com",
    ]);
    expect(doc.hosts[2]?.matches[0]?.paths[0]).toMatch(/-libfoo-1\.0$/);
    expect(doc.unreadable).toEqual([]);
  });

  it("takes version ranges and store paths", async () => {
    const newer = json<WhoRunsJson>(await ogygia(["who-runs", "libfoo>=1.1", "--json"]));
    expect(newer.hosts.map((h) => h.host)).toEqual(["h3.example.com"]);
    const older = json<WhoRunsJson>(await ogygia(["who-runs", "libfoo<1.1", "--json"]));
    expect(older.hosts.map((h) => h.host)).toEqual([
      "h1.example.com",
      "h2.example.com",
      "h4.example.com",
    ]);
    const byPath = json<WhoRunsJson>(await ogygia(["who-runs", systems.sysC, "--json"]));
    expect(byPath.hosts.map((h) => h.host)).toEqual(["h4.example.com"]);
  });

  it('exits 0 with "no host runs it" when none does', async () => {
    const result = await ogygia(["who-runs", "openssl<3.0.8"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("no host runs openssl<3.0.8");
  });
});

interface ImpactJson {
  summary: Record<string, number>;
  groups: {
    id: number;
    hosts: { host: string }[];
    impact: {
      status: string;
      reboot: boolean;
      bootLinksChanged: string[];
      units: { start: string[]; stop: string[]; restart: string[] };
      packages: { changed: { name: string; before: string[]; after: string[] }[] };
      sizeDelta: number;
      reason: string | null;
    };
  }[];
}

function groupOf(doc: ImpactJson, host: string): ImpactJson["groups"][number] | undefined {
  return doc.groups.find((g) => g.hosts.some((h) => h.host === host));
}

describe("POST /closure", () => {
  interface ClosureJson {
    /** References are indices into paths, then missing. */
    paths: { path: string; narSize: number; references: number[] }[];
    missing: string[];
  }
  const decode = (doc: ClosureJson): { path: string; narSize: number; references: string[] }[] => {
    const names = [...doc.paths.map((e) => e.path), ...doc.missing];
    return doc.paths.map((e) => ({ ...e, references: e.references.map((i) => names[i] ?? "?") }));
  };
  const post = async (paths: unknown): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${operator.url}/closure`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths }),
    });
    return { status: res.status, body: await res.text() };
  };

  it("answers the union of closures, from this host's store and from its peers, as Nix has them", async () => {
    // The operator's store holds sysA only: sysB's and sysC's own paths come from the peers.
    const answer = await post([systems.sysB, systems.sysC]);
    expect(answer.status).toBe(200);
    const doc = JSON.parse(answer.body) as ClosureJson;
    expect(doc.missing).toEqual([]);
    const expected = JSON.parse(
      await nix(["path-info", "-r", "--json", systems.sysB, systems.sysC]),
    ) as { path: string; narSize: number; references: string[] }[];
    const byPath = (list: { path: string; narSize: number; references: string[] }[]) =>
      Object.fromEntries(
        list.map((e) => [e.path, { narSize: e.narSize, references: [...e.references].sort() }]),
      );
    expect(byPath(decode(doc))).toEqual(byPath(expected));
  });

  it("lists a path nobody serves in missing, and refuses what is not a list of store paths", async () => {
    const answer = await post([ghostSystem, systems.sysA]);
    expect(answer.status).toBe(200);
    const doc = JSON.parse(answer.body) as ClosureJson;
    expect(doc.missing).toEqual([ghostSystem]);
    expect(doc.paths.map((e) => e.path)).toContain(systems.sysA);
    expect((await post(["/etc/passwd"])).status).toBe(400);
    expect((await post([])).status).toBe(400);
    expect((await post(Array.from({ length: 513 }, () => systems.sysA))).status).toBe(400);
  });

  it("who-runs reads a few batches instead of a narinfo per path, with the same answer", async () => {
    const batched = json<WhoRunsJson & { stats: { irisdRequests: number; distinctPaths: number } }>(
      await ogygia(["who-runs", "glibc", "--json"]),
    );
    const perPath = json<WhoRunsJson & { stats: { irisdRequests: number; distinctPaths: number } }>(
      await ogygia(["who-runs", "glibc", "--json"], { OGYGIA_IMPACT_PER_PATH: "1" }),
    );
    expect(batched.hosts).toEqual(perPath.hosts);
    expect(batched.hosts.map((h) => h.host)).toHaveLength(4);
    expect(batched.stats.distinctPaths).toBe(perPath.stats.distinctPaths);
    // sysA is local (one database query); sysB and sysC in one POST /closure.
    expect(batched.stats.irisdRequests).toBe(1);
    expect(perPath.stats.irisdRequests).toBeGreaterThan(5);
  });
});

describe("ogygia impact", () => {
  it("--all-to groups hosts by impact, names the units, and flags reboot only for a kernel change", async () => {
    const result = await ogygia(["impact", "--all-to", systems.sysB, "--json"]);
    expect(result.code).toBe(0);
    const doc = json<ImpactJson>(result);
    expect(doc.summary).toMatchObject({ hosts: 4, changes: 3, unchanged: 1, reboot: 1 });
    const fromA = groupOf(doc, "h1.example.com");
    expect(fromA?.hosts.map((h) => h.host)).toEqual(["h1.example.com", "h2.example.com"]);
    expect(fromA?.impact.units).toEqual({ start: ["c.service"], stop: [], restart: ["a.service"] });
    expect(fromA?.impact.reboot).toBe(false);
    const fromC = groupOf(doc, "h4.example.com");
    expect(fromC?.hosts).toHaveLength(1);
    expect(fromC?.impact.reboot).toBe(true);
    expect(fromC?.impact.bootLinksChanged).toEqual(["kernel", "initrd", "kernel-modules"]);
    expect(fromC?.impact.units.restart).toEqual(["a.service"]);
    expect(groupOf(doc, "h3.example.com")?.impact.status).toBe("unchanged");
  });

  it("takes a release file, and prints the summary table before the groups", async () => {
    const release = path.join(dir, "release.json");
    await writeFile(
      release,
      JSON.stringify({
        revision: "r2",
        hosts: { "h1.example.com": systems.sysC, h3: systems.sysA },
      }),
    );
    const doc = json<ImpactJson>(await ogygia(["impact", release, "--json"]));
    const h1 = groupOf(doc, "h1.example.com")?.impact;
    expect(h1?.reboot).toBe(true);
    expect(h1?.units).toEqual({ start: [], stop: [], restart: [] });
    const h3 = groupOf(doc, "h3.example.com")?.impact;
    expect(h3?.reboot).toBe(false);
    expect(h3?.units).toEqual({ start: [], stop: ["c.service"], restart: ["a.service"] });
    const text = await ogygia(["impact", release]);
    expect(text.code).toBe(0);
    const table = text.stdout.indexOf("Group  Hosts");
    expect(table).toBeGreaterThan(0);
    expect(text.stdout.indexOf("Group 1 (")).toBeGreaterThan(table);
    expect(text.stdout).toContain("reboot: yes (kernel, initrd, kernel-modules differ)");
  });
});

describe("a host whose system nobody serves", () => {
  beforeAll(async () => {
    await publish(path.join(dir, "ghost"), "ghost.example.com");
  });

  it("is reported by who-runs and impact, naming the path, not skipped", async () => {
    const who = await ogygia(["who-runs", "libfoo", "--json"]);
    expect(who.code).toBe(1);
    const doc = json<WhoRunsJson>(who);
    expect(doc.hosts.map((h) => h.host)).toHaveLength(4);
    expect(doc.unreadable).toHaveLength(1);
    expect(doc.unreadable[0]?.host).toBe("ghost.example.com");
    expect(doc.unreadable[0]?.reason).toContain(`nobody serves ${ghostSystem}`);
    const impact = await ogygia(["impact", "--all-to", systems.sysB]);
    expect(impact.code).toBe(1);
    expect(impact.stdout).toMatch(/unreadable\): ghost\.example\.com/);
    expect(impact.stdout).toContain(`nobody serves ${ghostSystem}`);
  });

  it("fails diff with an error naming the path", async () => {
    const result = await ogygia(["diff", "h1", "ghost"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`nobody serves ${ghostSystem}`);
  });
});
