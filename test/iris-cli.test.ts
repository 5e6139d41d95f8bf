/**
 * `ogygia iris push` and `ogygia iris providers`, run as processes against
 * real ogygia-irisd daemons over real chroot Nix stores: B holds an unsigned
 * closure, C has B as its peer and trusts the key push signs with.
 */

import { symlink } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { runCli } from "./helpers/cli.js";
import { startIrisd, type IrisdProcess } from "./helpers/irisd.js";
import {
  hashPartOf,
  addToStore,
  buildClosure,
  generateKeys,
  makeChrootStore,
  nixEnv,
  pathInfoJson,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, tempDir, waitFor } from "./helpers/process.js";

interface ProvidersJson {
  hash: string;
  local: boolean;
  providers: { url: string; storePath: string; signatures: string[] }[];
}

interface PushJson {
  closure: string[];
  keyName: string | null;
  signed: string[];
  alreadySigned: string[];
  rescan: { indexed: number; added: number; notServeable: string[]; missing: string[] } | null;
  failed: { path: string; error: string }[];
}

let dir: string;
let closure: TestClosure;
let keys: TestKeys;
let storeB: ChrootStore;
let storeC: ChrootStore;
let nodeB: IrisdProcess;
let nodeC: IrisdProcess;

/** The CLI with Nix's test settings (push runs `nix store sign`). */
function cli(args: string[], input?: string): ReturnType<typeof runCli> {
  const env = nixEnv();
  return runCli(args, {
    env: { NIX_CONFIG: env.NIX_CONFIG, OGYGIA_IRISD_URL: undefined },
    ...(input === undefined ? {} : { input }),
  });
}

beforeAll(async () => {
  dir = await tempDir("iris-cli");
  closure = await buildClosure(dir, uniqueSalt("push"));
  keys = await generateKeys(dir, uniqueSalt("push-key"));
  storeB = await makeChrootStore(closure.paths);
  const marker = path.join(dir, "marker.txt");
  const { writeFile } = await import("node:fs/promises");
  await writeFile(marker, uniqueSalt("marker"));
  storeC = await makeChrootStore([await addToStore(marker)]);
  nodeB = await startIrisd({ storeRoot: storeB.root });
  nodeC = await startIrisd({
    storeRoot: storeC.root,
    extraToml: [
      "[peers]",
      `urls = ["${nodeB.url}"]`,
      "[trust]",
      `trusted_keys = ["${keys.publicKey}"]`,
      "[cache]",
      `dir = "${path.join(dir, "cache-c")}"`,
    ].join("\n"),
  });
}, 180_000);

afterAll(async () => {
  await nodeC.stop();
  await nodeB.stop();
  await storeB.remove();
  await storeC.remove();
  await removeDir(dir);
});

describe("ogygia iris providers and push", () => {
  it("finds nobody for a path no daemon serves yet", async () => {
    const result = await cli(["iris", "providers", "--irisd", nodeC.url, "--json", closure.top]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      hash: hashPartOf(closure.top),
      local: false,
      providers: [],
    });
  });

  it("without --sign, names every unsigned path and exits 1", async () => {
    const result = await cli([
      "iris",
      "push",
      "--store",
      storeB.root,
      "--irisd",
      nodeB.url,
      closure.top,
    ]);
    expect(result.code).toBe(1);
    for (const p of closure.paths) {
      expect(result.stderr).toContain(`error: ${p}: ogygia-irisd will not serve it: unsigned`);
    }
    expect(result.stderr).toContain("3 of 3 failed");
  });

  it("refuses a bad key file before touching anything", async () => {
    const bad = path.join(dir, "bad.secret");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(bad, "not-a-key");
    const result = await cli([
      "iris",
      "push",
      "--sign",
      bad,
      "--store",
      storeB.root,
      "--irisd",
      nodeB.url,
      closure.top,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(bad);
    const infos = await pathInfoJson(closure.paths, { store: storeB.root });
    expect(infos.flatMap((i) => i.signatures ?? [])).toEqual([]);
  });

  it("signs the closure, has B index it, and C then finds it on B", async () => {
    const result = await cli([
      "iris",
      "push",
      "--sign",
      keys.secretKeyFile,
      "--store",
      storeB.root,
      "--irisd",
      nodeB.url,
      "--json",
      closure.top,
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const pushed = JSON.parse(result.stdout) as PushJson;
    expect(pushed.closure).toEqual([...closure.paths].sort());
    expect(pushed.keyName).toBe(keys.name);
    expect([...pushed.signed].sort()).toEqual([...closure.paths].sort());
    expect(pushed.failed).toEqual([]);
    expect(pushed.rescan?.notServeable).toEqual([]);
    expect(pushed.rescan?.missing).toEqual([]);

    // Nix itself recorded the signatures.
    for (const info of await pathInfoJson(closure.paths, { store: storeB.root })) {
      expect(info.signatures?.some((s) => s.startsWith(`${keys.name}:`))).toBe(true);
    }

    // C learns of it from B's filter within seconds, with no restart.
    const answer = await waitFor(
      "C to list B as a provider",
      async () => {
        const r = await cli(["iris", "providers", "--irisd", nodeC.url, "--json", closure.top]);
        const json = JSON.parse(r.stdout) as ProvidersJson;
        return json.providers.length > 0 ? json : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    expect(answer.local).toBe(false);
    expect(answer.providers).toEqual([
      expect.objectContaining({
        url: nodeB.url,
        storePath: closure.top,
        signatures: [keys.name],
      }) as unknown,
    ]);

    const text = await cli(["iris", "providers", "--irisd", nodeC.url, hashPartOf(closure.top)]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${hashPartOf(closure.top)}: not in the local store; on 1 peer`);
    expect(text.stdout).toContain(`signed by ${keys.name}`);
  });

  it("leaves signed paths alone on a second push, reading paths from stdin and links", async () => {
    const link = path.join(dir, "result");
    await symlink(path.join(storeB.realStoreDir, path.basename(closure.mid)), link);
    const result = await cli(
      ["iris", "push", "--sign", keys.secretKeyFile, "--store", storeB.root, "--irisd", nodeB.url],
      `${link}\n${closure.leaf}\n`,
    );
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `2 paths in the closure; 0 signed with '${keys.name}', 2 already signed; ` +
        "ogygia-irisd now serves 3 paths (0 new)\n",
    );
  });

  it("names arguments that are not store paths, and still pushes the rest", async () => {
    const result = await cli([
      "iris",
      "push",
      "--store",
      storeB.root,
      "--irisd",
      nodeB.url,
      "/etc/hostname",
      closure.leaf,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error: /etc/hostname: resolves to /etc/hostname");
    expect(result.stdout).toContain("1 path in the closure");
  });
});
