import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { finished } from "node:stream/promises";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  checkPathSignatures,
  createTrustedKeys,
  formatHash,
  formatPublicKey,
  generateSecretKey,
  narInfoFromPathInfo,
  openStoreDb,
  parseHash,
  parseSecretKey,
  parseStorePath,
  pathFingerprint,
  physicalPath,
  readPublicKeyFile,
  readSecretKeyFile,
  renderNarInfo,
  renderNixCacheInfo,
  signPath,
  signFingerprint,
  verifyFingerprint,
  writeNar,
  type PathInfo,
  type SecretKey,
  type StoreDb,
} from "../src/nix/index.js";
import {
  addToStore,
  buildClosure,
  generateKeys,
  makeChrootStore,
  nixVerify,
  nixCopy,
  pathInfoJson,
  signPaths,
  uniqueSalt,
  type ChrootStore,
  type TestClosure,
  type TestKeys,
} from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";

/**
 * Writes a file:// binary cache the way our daemon will serve one: NARs
 * streamed from the store's files, narinfos from its database, signed by
 * `sign` (which may lie, to test that Nix refuses).
 */
async function writeCache(
  cacheDir: string,
  db: StoreDb,
  paths: readonly string[],
  sign: (info: PathInfo) => string[],
): Promise<void> {
  await mkdir(path.join(cacheDir, "nar"), { recursive: true });
  await writeFile(path.join(cacheDir, "nix-cache-info"), renderNixCacheInfo());
  for (const storePath of paths) {
    const info = db.queryPathInfo(storePath);
    if (info === undefined) throw new Error(`${storePath} is not in the source store`);
    const narInfo = narInfoFromPathInfo({ ...info, sigs: sign(info) });
    const out = createWriteStream(path.join(cacheDir, narInfo.url));
    const written = await writeNar(physicalPath(db.location, storePath), out, { hash: true });
    out.end();
    await finished(out);
    expect(written.narHash && formatHash(written.narHash, "nix32")).toBe(
      formatHash(info.narHash, "nix32"),
    );
    const { hashPart } = parseStorePath(storePath);
    await writeFile(path.join(cacheDir, `${hashPart}.narinfo`), renderNarInfo(narInfo));
  }
}

describe("signatures interoperate with Nix 2.8", () => {
  let dir: string;
  let closure: TestClosure;
  let caPath: string;
  let nixKeys: TestKeys;
  let ourKey: SecretKey;
  let source: ChrootStore;
  let opened: StoreDb | undefined;
  const db = (): StoreDb => {
    if (opened === undefined) throw new Error("the source store database was not opened");
    return opened;
  };

  beforeAll(async () => {
    dir = await tempDir("nix-sig");
    closure = await buildClosure(dir, uniqueSalt("sig"));
    const caTree = path.join(dir, "ca-input");
    await writeFile(caTree, `content-addressed ${uniqueSalt("ca")}\n`);
    caPath = await addToStore(caTree);
    nixKeys = await generateKeys(dir, "nix-made-1");
    await signPaths(nixKeys, [closure.top]);
    ourKey = parseSecretKey(generateSecretKey("ogygia-made-1"));
    source = await makeChrootStore([closure.top, caPath], { root: path.join(dir, "source") });
    opened = openStoreDb({ root: source.root });
  });

  afterAll(async () => {
    opened?.close();
    await removeDir(dir);
  });

  it("reads Nix's key files and verifies what nix store sign made", async () => {
    const secret = await readSecretKeyFile(nixKeys.secretKeyFile);
    const pub = await readPublicKeyFile(nixKeys.publicKeyFile);
    expect(formatPublicKey(secret.publicKey)).toBe(nixKeys.publicKey);
    expect(formatPublicKey(pub)).toBe(nixKeys.publicKey);
    const trusted = createTrustedKeys([pub]);
    const untrusted = createTrustedKeys([ourKey.publicKey]);
    for (const json of await pathInfoJson([closure.top], { recursive: true })) {
      const info = {
        storePath: json.path,
        narHash: parseHash(json.narHash),
        narSize: json.narSize,
        references: json.references,
        sigs: json.signatures ?? [],
      };
      const sig = info.sigs.find((s) => s.startsWith(`${nixKeys.name}:`));
      expect(sig, json.path).toBeDefined();
      expect(checkPathSignatures(info, trusted)).toMatchObject({
        trusted: true,
        reason: "signed",
        signers: [nixKeys.name],
      });
      expect(checkPathSignatures(info, untrusted).trusted).toBe(false);
      // Our signature with Nix's key is the same bytes (Ed25519 is deterministic).
      expect(info.sigs).toContain(signPath(secret, info));
    }
  });

  it("a cache we write and sign is accepted by nix copy and passes nix store verify", async () => {
    const cache = path.join(dir, "cache-good");
    const client = path.join(dir, "client-good");
    await writeCache(cache, db(), [...closure.paths, caPath], (info) => [signPath(ourKey, info)]);
    const copied = await nixCopy({
      from: `file://${cache}`,
      to: client,
      paths: [closure.top, caPath],
      trustedPublicKeys: [formatPublicKey(ourKey.publicKey)],
      cacheDir: path.join(dir, "nix-cache"),
    });
    expect(copied.code).toBe(0);
    const arrived = await pathInfoJson([closure.top], { store: client, recursive: true });
    expect(arrived.map((a) => a.path).sort()).toEqual([...closure.paths].sort());
    for (const info of arrived) {
      expect(info.signatures).toContain(
        signFingerprint(
          ourKey,
          pathFingerprint({
            storePath: info.path,
            narHash: parseHash(info.narHash),
            narSize: info.narSize,
            references: info.references,
          }),
        ),
      );
    }
    await nixVerify({
      store: client,
      paths: [closure.top, caPath],
      trustedPublicKeys: [formatPublicKey(ourKey.publicKey)],
    });
  });

  it("nix copy refuses a signature over a tampered fingerprint, and so do we", async () => {
    const cache = path.join(dir, "cache-tampered");
    const client = path.join(dir, "client-tampered");
    const tampered = (info: PathInfo): string => {
      const lie = pathFingerprint({ ...info, narSize: info.narSize + 1 });
      return signFingerprint(ourKey, lie);
    };
    await writeCache(cache, db(), closure.paths, (info) => [tampered(info)]);
    const trusted = createTrustedKeys([ourKey.publicKey]);
    const top = db().queryPathInfo(closure.top);
    if (top === undefined) throw new Error("top missing");
    expect(verifyFingerprint(pathFingerprint(top), tampered(top), trusted)).toBe(false);
    expect(checkPathSignatures({ ...top, sigs: [tampered(top)] }, trusted).trusted).toBe(false);

    const result = await nixCopy({
      from: `file://${cache}`,
      to: client,
      paths: [closure.top],
      trustedPublicKeys: [formatPublicKey(ourKey.publicKey)],
      allowFailure: true,
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/lacks a valid signature/);
  });

  it("a content-addressed path needs no signature, for Nix and for us", async () => {
    const cache = path.join(dir, "cache-unsigned");
    const client = path.join(dir, "client-unsigned");
    await writeCache(cache, db(), [caPath, ...closure.paths], () => []);
    const info = db().queryPathInfo(caPath);
    if (info === undefined) throw new Error("CA path missing");
    expect(checkPathSignatures(info, createTrustedKeys([]))).toMatchObject({
      trusted: true,
      reason: "content-addressed",
    });
    const ok = await nixCopy({ from: `file://${cache}`, to: client, paths: [caPath] });
    expect(ok.code).toBe(0);
    const unsigned = await nixCopy({
      from: `file://${cache}`,
      to: client,
      paths: [closure.top],
      allowFailure: true,
    });
    expect(unsigned.code).not.toBe(0);
    expect(unsigned.stderr).toMatch(/lacks a valid signature/);
  });
});
