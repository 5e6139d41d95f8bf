import { writeFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  formatHash,
  openStoreDb,
  parseStorePath,
  type PathInfo,
  type StoreDb,
} from "../src/nix/index.js";
import {
  addToStore,
  buildClosure,
  generateKeys,
  makeChrootStore,
  pathInfoJson,
  runNix,
  signPaths,
  uniqueSalt,
  type ChrootStore,
  type NixPathInfoJson,
  type TestClosure,
} from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";

/** Our PathInfo in the shape of `nix path-info --json --sigs` (Nix omits false/empty fields). */
function asNixJson(info: PathInfo): NixPathInfoJson {
  const json: NixPathInfoJson = {
    path: info.storePath,
    narHash: formatHash(info.narHash, "sri"),
    narSize: info.narSize,
    references: info.references,
  };
  if (info.ca !== undefined) json.ca = info.ca;
  if (info.deriver !== undefined) json.deriver = info.deriver;
  if (info.registrationTime !== 0) json.registrationTime = info.registrationTime;
  if (info.ultimate) json.ultimate = true;
  if (info.sigs.length > 0) json.signatures = info.sigs;
  return json;
}

function sortedNixJson(json: NixPathInfoJson): NixPathInfoJson {
  return {
    ...json,
    references: [...json.references].sort(),
    ...(json.signatures ? { signatures: [...json.signatures].sort() } : {}),
  };
}

describe("store database reader against a real Nix 2.8 store", () => {
  let dir: string;
  let closure: TestClosure;
  let caPath: string;
  let store: ChrootStore;
  let opened: StoreDb | undefined;
  const db = (): StoreDb => {
    if (opened === undefined) throw new Error("the store database was not opened");
    return opened;
  };
  let expected: NixPathInfoJson[];

  beforeAll(async () => {
    dir = await tempDir("nix-db");
    closure = await buildClosure(dir, uniqueSalt("db"));
    const tree = path.join(dir, "ca-tree");
    await mkdir(path.join(tree, "sub"), { recursive: true });
    await writeFile(path.join(tree, "sub", "file"), "content-addressed\n");
    caPath = await addToStore(tree);
    const keys = await generateKeys(dir, "db-test-1");
    const other = await generateKeys(dir, "db-test-2");
    await signPaths(keys, [closure.top]);
    await signPaths(other, [closure.mid]);
    store = await makeChrootStore([closure.top, caPath, ...closure.derivations], {
      root: path.join(dir, "store"),
    });
    expected = await pathInfoJson([], { store: store.root, all: true });
    opened = openStoreDb({ root: store.root });
  });

  afterAll(async () => {
    opened?.close();
    await removeDir(dir); // holds the chroot store too
  });

  it("returns what nix path-info --json --sigs reports, for every path", () => {
    expect(expected.length).toBe(3 + 1 + 3);
    for (const nixInfo of expected) {
      const ours = db().queryPathInfo(nixInfo.path);
      expect(ours, nixInfo.path).toBeDefined();
      if (ours === undefined) continue;
      expect(asNixJson(ours)).toEqual(sortedNixJson(nixInfo));
    }
    // The fixture covers references, signatures from two keys, and both kinds of CA.
    const byPath = new Map(expected.map((e) => [e.path, e]));
    expect(byPath.get(closure.mid)?.signatures?.length).toBe(2);
    expect(byPath.get(caPath)?.ca?.startsWith("fixed:r:sha256:")).toBe(true);
    expect(byPath.get(closure.derivations[0] ?? "")?.ca?.startsWith("text:sha256:")).toBe(true);
  });

  it("lists and counts exactly the valid paths", () => {
    const paths = expected.map((e) => e.path).sort();
    expect(db().queryAllValidPaths()).toEqual(paths);
    expect(db().countValidPaths()).toBe(paths.length);
  });

  it("finds a path by its hash part, and nothing for an unknown one", () => {
    for (const nixInfo of expected) {
      const { hashPart } = parseStorePath(nixInfo.path);
      expect(db().queryPathFromHashPart(hashPart)).toBe(nixInfo.path);
      expect(db().queryPathInfoByHashPart(hashPart)?.storePath).toBe(nixInfo.path);
    }
    expect(db().queryPathFromHashPart("00000000000000000000000000000000")).toBeUndefined();
    expect(db().queryPathInfoByHashPart("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")).toBeUndefined();
    expect(() => db().queryPathFromHashPart("not-a-hash")).toThrow(/invalid hash part/);
  });

  it("answers references, referrers and validity like nix-store --query", async () => {
    const query = async (flag: string, p: string): Promise<string[]> => {
      const out = await runNix("nix-store", ["--store", store.root, "--query", flag, p]);
      return out.stdout
        .toString("utf8")
        .split("\n")
        .filter((l) => l !== "")
        .sort();
    };
    for (const p of [closure.top, closure.mid, closure.leaf]) {
      expect(db().queryReferences(p)).toEqual(await query("--references", p));
      expect(db().queryReferrers(p)).toEqual(await query("--referrers", p));
      expect(db().isValidPath(p)).toBe(true);
    }
    const missing = `/nix/store/${"0".repeat(32)}-missing`;
    expect(db().isValidPath(missing)).toBe(false);
    expect(db().queryPathInfo(missing)).toBeUndefined();
    expect(db().queryReferences(missing)).toEqual([]);
  });

  it("sees paths Nix adds and deletes while the database is open, and notices the change", async () => {
    expect(db().hasChanged()).toBe(false);
    const extra = await buildClosure(dir, uniqueSalt("db-extra"));
    expect(db().isValidPath(extra.top)).toBe(false);
    await store.copy([extra.top]);
    expect(db().hasChanged()).toBe(true);
    expect(db().hasChanged()).toBe(false);
    expect(db().queryPathInfo(extra.top)?.references).toEqual([extra.mid]);
    await runNix("nix-store", ["--store", store.root, "--delete", extra.top]);
    expect(db().hasChanged()).toBe(true);
    expect(db().isValidPath(extra.top)).toBe(false);
    expect(db().isValidPath(extra.mid)).toBe(true);
  });

  it("keeps answering while Nix writes to the database", async () => {
    const more = await buildClosure(dir, uniqueSalt("db-concurrent"));
    const target = await makeChrootStore([closure.leaf], {
      root: path.join(dir, "concurrent-store"),
    });
    const reader = openStoreDb({ root: target.root, busyTimeoutMs: 30_000 });
    try {
      const state = { finished: false };
      const copying = target.copy([more.top, closure.top]).finally(() => {
        state.finished = true;
      });
      let queries = 0;
      while (!state.finished) {
        reader.queryAllValidPaths();
        reader.queryPathInfo(more.top);
        reader.queryPathFromHashPart(parseStorePath(closure.top).hashPart);
        queries += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
      await copying;
      expect(queries).toBeGreaterThan(0);
      expect(reader.queryPathInfo(more.top)?.narSize).toBeGreaterThan(0);
      expect(reader.countValidPaths()).toBe(6); // leaf, 3 new paths, top and mid
    } finally {
      reader.close();
      await target.remove();
    }
  });

  it("refuses a missing database or a file that is not Nix's, with ERR_OGYGIA_NIX_DB", async () => {
    expect(() => openStoreDb({ root: dir })).toThrow(/does not exist/);
    const bogus = path.join(dir, "bogus.sqlite");
    await writeFile(bogus, "");
    expect(() => openStoreDb({ dbPath: bogus })).toThrow(/not a Nix store database/);
    try {
      openStoreDb({ root: dir });
    } catch (err) {
      expect((err as { code?: string }).code).toBe("ERR_OGYGIA_NIX_DB");
    }
  });
});
