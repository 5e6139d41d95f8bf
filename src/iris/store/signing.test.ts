import { rm, writeFile } from "node:fs/promises";
import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  checkPathSignatures,
  createTrustedKeys,
  generateSecretKey,
  hashBytes,
  parseSecretKey,
  signPath,
} from "../../nix/index.js";
import { createPathSigner, loadSigningKeys } from "./signing.js";
import { tempDir } from "../../../test/support/temp.js";

const info = {
  storePath: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello",
  narHash: hashBytes("sha256", "nar"),
  narSize: 120,
  references: ["/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello"],
  sigs: [] as string[],
};

describe("createPathSigner", () => {
  const key = parseSecretKey(generateSecretKey("ours-1"));
  const other = parseSecretKey(generateSecretKey("theirs-1"));
  const trusted = createTrustedKeys([key.publicKey]);

  it("adds a valid signature by each configured key", () => {
    const signer = createPathSigner([key], { storeDir: "/nix/store" });
    expect(signer.canSign).toBe(true);
    const sigs = signer.signatures(info);
    expect(sigs).toHaveLength(1);
    expect(checkPathSignatures({ ...info, sigs }, trusted)).toMatchObject({
      trusted: true,
      signers: ["ours-1"],
    });
  });

  it("keeps stored signatures and does not sign twice under one key name", () => {
    const signer = createPathSigner([key], { storeDir: "/nix/store" });
    const theirs = signPath(other, info);
    const both = signer.signatures({ ...info, sigs: [theirs] });
    expect(both).toHaveLength(2);
    expect(both).toContain(theirs);
    expect(both).toEqual([...both].sort());
    const already = signPath(key, info);
    expect(signer.signatures({ ...info, sigs: [already] })).toEqual([already]);
  });

  it("returns the stored signatures unchanged without keys", () => {
    const signer = createPathSigner([], { storeDir: "/nix/store" });
    expect(signer.canSign).toBe(false);
    expect(signer.signatures({ ...info, sigs: ["x:y"] })).toEqual(["x:y"]);
  });

  it("stays within its cache bound and still signs correctly", () => {
    const signer = createPathSigner([key], { storeDir: "/nix/store", maxEntries: 2 });
    for (let i = 0; i < 5; i++) {
      const path = { ...info, narSize: 100 + i };
      const sigs = signer.signatures(path);
      expect(checkPathSignatures({ ...path, sigs }, trusted).trusted).toBe(true);
    }
  });
});

describe("loadSigningKeys", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir("irisd-keys");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads key files", async () => {
    const file = path.join(dir, "a.secret");
    await writeFile(file, generateSecretKey("a-1"));
    const keys = await loadSigningKeys([file]);
    expect(keys.map((k) => k.name)).toEqual(["a-1"]);
  });

  it("names the file of a bad key", async () => {
    const file = path.join(dir, "bad.secret");
    await writeFile(file, "a-1:notbase64!");
    await expect(loadSigningKeys([file])).rejects.toThrow(file);
  });

  it("refuses two keys with the same name", async () => {
    const one = path.join(dir, "one.secret");
    const two = path.join(dir, "two.secret");
    await writeFile(one, generateSecretKey("same-1"));
    await writeFile(two, generateSecretKey("same-1"));
    await expect(loadSigningKeys([one, two])).rejects.toThrow("the same name 'same-1'");
  });
});
