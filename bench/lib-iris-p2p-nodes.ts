/**
 * Nodes for the peer-to-peer benchmark (B is an irisd over `signedStore`):
 * C, an irisd over a nearly empty store with B (and optionally more peers)
 * as peers and a NAR cache in a folder of its own.
 */

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { startIrisd, type IrisdProcess } from "../test/helpers/irisd.js";
import { nixRun } from "./lib-iris-closure.js";

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
  /** Another build's daemon script (see `startIrisd`). */
  script?: string;
  /** `[server] helper_thread_nice` (default: the daemon's). */
  helperThreadNice?: number;
  /** Node options before the script (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** `[server] workers` (default: the daemon's, 1). */
  workers?: number;
}): Promise<IrisdProcess> {
  rmSync(options.cacheDir, { recursive: true, force: true });
  mkdirSync(options.cacheDir, { recursive: true });
  return startIrisd({
    storeRoot: options.storeRoot,
    peers: options.peers,
    trustedKeys: [options.publicKey],
    cache: { dir: options.cacheDir, maxSizeBytes: 8 * 1024 ** 3 },
    logLevel: "info",
    script: options.script,
    helperThreadNice: options.helperThreadNice,
    nodeArgs: options.nodeArgs,
    workers: options.workers,
  });
}
