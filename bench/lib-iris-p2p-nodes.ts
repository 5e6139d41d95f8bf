/**
 * Nodes for the peer-to-peer benchmark: B, an irisd serving a chroot store
 * that holds the benchmark closure (signed by a fresh key), and C, an irisd
 * over a nearly empty store with B (and optionally more peers) as peers and
 * a NAR cache in a folder of its own.
 */

import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { startIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { NIX_ENV, nixRun } from "./lib-iris-closure.js";

export interface SignedStore {
  root: string;
  publicKey: string;
}

/** A chroot store under `work` holding `top`'s closure, signed by a new key. */
export function signedStore(work: string, top: string): SignedStore {
  const secret = nixRun(["nix", "key", "generate-secret", "--key-name", "iris-p2p-bench-1"]).trim();
  const keyFile = path.join(work, "key.secret");
  writeFileSync(keyFile, secret, { mode: 0o600 });
  const publicKey = spawnSync("nix", ["key", "convert-secret-to-public"], {
    input: secret,
    env: NIX_ENV,
    encoding: "utf8",
  }).stdout.trim();
  const root = path.join(work, "store-b");
  nixRun(["nix", "copy", "--no-check-sigs", "--to", root, top]);
  nixRun(["nix", "store", "sign", "--store", root, "-r", "--key-file", keyFile, top]);
  return { root, publicKey };
}

/** A chroot store holding one small content-addressed path (a store must exist to be served). */
export function emptyStore(work: string, name: string): string {
  const root = path.join(work, name);
  const marker = path.join(work, `${name}-marker`);
  writeFileSync(marker, name);
  nixRun(["nix-store", "--store", root, "--add", marker]);
  return root;
}

/** Starts C with `peers` and a fresh NAR cache folder (`cacheDir` is emptied first). */
export async function startC(options: {
  storeRoot: string;
  peers: string[];
  publicKey: string;
  cacheDir: string;
}): Promise<IrisdProcess> {
  rmSync(options.cacheDir, { recursive: true, force: true });
  mkdirSync(options.cacheDir, { recursive: true });
  return startIrisd({
    storeRoot: options.storeRoot,
    peers: options.peers,
    trustedKeys: [options.publicKey],
    cache: { dir: options.cacheDir, maxSizeBytes: 8 * 1024 ** 3 },
    logLevel: "info",
  });
}
