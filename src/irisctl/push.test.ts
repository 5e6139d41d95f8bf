import { writeFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { OgygiaError } from "../core/index.js";
import { generateSecretKey, type PathInfo, type StoreDb } from "../nix/index.js";
import { pushPaths } from "./push.js";
import { makeTempDir } from "../../test/support/nix.js";

const STORE_PATH = "/nix/store/0c2g1lqlkpn6gyxxk6cyqk0m1yhirw5a-hello-2.12";

/** A store holding STORE_PATH, unsigned and without references. */
function fakeStore(): StoreDb {
  const store: Partial<StoreDb> = {
    isValidPath: (p) => p === STORE_PATH,
    queryReferences: () => [],
    // narSize 0: never counts as signed, so the push always signs it.
    queryPathInfo: (p) =>
      p === STORE_PATH ? ({ narSize: 0, sigs: [] } as unknown as PathInfo) : undefined,
    close: () => undefined,
  };
  return store as StoreDb;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function keyFile(): string {
  const { dir, cleanup } = makeTempDir("ogygia-push-");
  cleanups.push(cleanup);
  const file = path.join(dir, "key.secret");
  writeFileSync(file, generateSecretKey("test-1"));
  return file;
}

function push(runNix: (args: string[]) => Promise<string>, inputs = [STORE_PATH]) {
  return pushPaths({
    inputs,
    root: "/",
    signKeyFile: keyFile(),
    irisd: new URL("http://127.0.0.1:1"),
    runNix,
    openStore: fakeStore,
  });
}

describe("pushPaths", () => {
  it("reports nix failing to sign, and an argument that is no store path, per path", async () => {
    const result = await push(
      () => Promise.reject(new OgygiaError("ERR_OGYGIA_NIX_COMMAND", "error: cannot open db")),
      [STORE_PATH, "no/such/file"],
    );
    expect(result.failed).toEqual([
      { path: "no/such/file", error: "no such file or store path" },
      { path: STORE_PATH, error: "nix store sign failed: error: cannot open db" },
    ]);
    expect(result.signed).toEqual([]);
    expect(result.rescan).toBeNull();
  });

  it("lets a programmer error propagate instead of blaming a path", async () => {
    const bug = new TypeError("cannot read properties of undefined");
    await expect(push(() => Promise.reject(bug))).rejects.toBe(bug);
  });
});
