/**
 * The resolver that answers from the local Nix store: its database for what
 * exists, its files for NARs.
 *
 * Serveable paths only: a path is answered when it carries a signature, is
 * content-addressed, or can be signed with a configured key. Anything else
 * is "not here", so a host's private, unsigned builds never leave it.
 *
 * Narinfos are rendered once and kept (bounded) until the database changes;
 * whether it changed is asked at most every `revalidateMs` (the check costs
 * about as much as a lookup). NAR requests always ask the database afresh
 * and must name the NAR hash the database holds now, so a URL for a path
 * since collected or rebuilt differently gets a 404, never other bytes.
 */

import { lstatSync } from "node:fs";
import type { Writable } from "node:stream";

import { OgygiaError, hasErrorCode } from "../core/index.js";
import {
  formatHash,
  isContentAddressed,
  narInfoFromPathInfo,
  openStoreDb,
  physicalPath,
  renderNarInfo,
  writeNar,
  type PathInfo,
  type SecretKey,
  type StoreDb,
} from "../nix/index.js";
import type { ByteRange, PathResolver, ServedNar, ServedNarInfo } from "./resolve.js";
import { createPathSigner } from "./signing.js";

export interface LocalStoreOptions {
  /** Physical root of the store (`/`, or a chroot store's folder). */
  root: string;
  /** Keys that sign served narinfos on the fly. */
  signingKeys?: readonly SecretKey[];
  /** How stale a cached narinfo may be, at most (default 250 ms). */
  revalidateMs?: number;
  /** Narinfos (and misses) kept in memory (default 16384). */
  maxCachedNarInfos?: number;
  /** NAR write chunk size (default: the NAR writer's, 1 MiB). */
  narChunkSize?: number;
  /** NAR chunks in flight per response (default 4). */
  narMaxInFlight?: number;
}

export interface LocalStore extends PathResolver {
  readonly db: StoreDb;
  /** The `nar/...` URL (relative to the server root) of a path's NAR. */
  narUrl(hashPart: string, narHash: string): string;
  close(): void;
}

/** `nar/<hash part>-<nix32 NAR hash>.nar`: names the path and exactly one content. */
export function narUrlOf(hashPart: string, narHash: string): string {
  return `nar/${hashPart}-${narHash}.nar`;
}

/** Opens the store database; throws ERR_OGYGIA_NIX_DB (with a hint) when it is missing. */
export function openLocalStore(options: LocalStoreOptions): LocalStore {
  const db = openStoreDb({ root: options.root });
  const { location } = db;
  const { storeDir } = location;
  const signer = createPathSigner(options.signingKeys ?? [], { storeDir });
  const revalidateMs = options.revalidateMs ?? 250;
  const maxEntries = options.maxCachedNarInfos ?? 16_384;
  const writeOptions = {
    reuseBuffers: true,
    chunkSize: options.narChunkSize,
    maxInFlight: options.narMaxInFlight,
  };

  /** Cached narinfos by hash part; `null` remembers "not serveable here". */
  const cache = new Map<string, ServedNarInfo | null>();
  let version = db.dataVersion();
  let checkedAt = performance.now();

  const serveable = (info: PathInfo): boolean =>
    info.narSize > 0 &&
    (info.sigs.length > 0 || signer.canSign || isContentAddressed(info, storeDir));

  const render = (info: PathInfo, hashPart: string): ServedNarInfo => {
    const narHash = formatHash(info.narHash, "nix32", false);
    const signed = { ...info, sigs: signer.signatures(info) };
    const narinfo = narInfoFromPathInfo(signed, {
      url: narUrlOf(hashPart, narHash),
      compression: "none",
      fileHash: info.narHash,
      fileSize: info.narSize,
    });
    return {
      storePath: info.storePath,
      body: Buffer.from(renderNarInfo(narinfo, { storeDir }), "utf8"),
      source: "local",
    };
  };

  const remember = (hashPart: string, entry: ServedNarInfo | null): void => {
    if (cache.size >= maxEntries) {
      const oldest = cache.keys().next();
      if (oldest.done !== true) cache.delete(oldest.value);
    }
    cache.set(hashPart, entry);
  };

  const revalidate = (): void => {
    const now = performance.now();
    if (now - checkedAt < revalidateMs) return;
    checkedAt = now;
    const current = db.dataVersion();
    if (current !== version) {
      version = current;
      cache.clear();
    }
  };

  const makeNar = (info: PathInfo, narHash: string, file: string): ServedNar => ({
    storePath: info.storePath,
    narSize: info.narSize,
    narHash,
    source: "local",
    async write(out: Writable, range: ByteRange | undefined): Promise<void> {
      const expected = range === undefined ? info.narSize : range.length;
      const result = await writeNar(file, out, { ...writeOptions, ...range });
      const wholeChanged = range === undefined && result.narSize !== info.narSize;
      if (result.bytes !== expected || wholeChanged) {
        throw new OgygiaError(
          "ERR_OGYGIA_IRISD",
          `the NAR of ${info.storePath} came out at ${result.narSize ?? result.bytes} bytes, ` +
            `the store database says ${info.narSize}: the path changed on disk`,
        );
      }
    },
  });

  return {
    name: "local",
    local: true,
    db,
    narUrl: narUrlOf,
    narInfo(hashPart) {
      revalidate();
      const hit = cache.get(hashPart);
      if (hit !== undefined) return hit ?? undefined;
      const info = db.queryPathInfoByHashPart(hashPart);
      const entry = info !== undefined && serveable(info) ? render(info, hashPart) : null;
      remember(hashPart, entry);
      return entry ?? undefined;
    },
    nar(hashPart, narHash) {
      const info = db.queryPathInfoByHashPart(hashPart);
      if (info === undefined || !serveable(info)) return undefined;
      const current = formatHash(info.narHash, "nix32", false);
      if (current !== narHash) return undefined;
      const file = physicalPath(location, info.storePath);
      try {
        lstatSync(file);
      } catch (err) {
        // Registered but gone from disk (deleted behind Nix's back): not here.
        if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
        throw err;
      }
      return makeNar(info, current, file);
    },
    close() {
      cache.clear();
      db.close();
    },
  };
}
