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
 * about as much as a lookup). NAR requests must name the NAR hash the
 * database holds now, so a URL for a path since collected or rebuilt
 * differently gets a 404, never other bytes: every NAR request asks the
 * database whether it changed (`data_version`, a few microseconds) and
 * looks the path up again when it did; while it did not, the previous
 * answer is reused (the lookup and its parsing were a tenth of the CPU of
 * serving a NAR from memory), as is the row a narinfo request just read.
 *
 * NARs are streamed from the files, except small ones (at most
 * `SMALL_NAR_BYTES`): those are assembled in memory, checked against the
 * database's NAR hash, sent in one write and kept in a bounded LRU
 * (`narMemoryCacheBytes`). A small path costs a dozen file system calls per
 * file (open, stat, read, close, readdir); a fleet asks for the same paths
 * again and again. The check means a corrupt small path is never served:
 * its transfer is cut instead. Large NARs are not hashed on the way (the
 * client checks the hash against the signed narinfo).
 */

import { createHash } from "node:crypto";
import { lstatSync } from "node:fs";
import path from "node:path";
import type { Writable } from "node:stream";

import { OgygiaError, hasErrorCode } from "../../core/index.js";
import {
  DEFAULT_NAR_CHUNK_SIZE,
  createBufferPool,
  formatHash,
  isContentAddressed,
  narInfoFromPathInfo,
  narListingOfPath,
  narOfSize,
  openStoreDb,
  physicalPath,
  renderNarInfo,
  renderNarListing,
  writeNar,
  type BufferPool,
  type PathInfo,
  type SecretKey,
  type StoreDb,
} from "../../nix/index.js";
import type { ByteRange, PathResolver, ServedNar, ServedNarInfo } from "../http/index.js";
import { readBuildLog } from "./build-log.js";
import { createPathSigner, type PathSigner } from "./signing.js";

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
  /** Memory for small NARs kept between requests (default 64 MiB; 0: none). */
  narMemoryCacheBytes?: number;
  /** Nix's build logs (default `<root>/nix/var/log/nix/drvs`). */
  logDir?: string;
}

/** NARs up to this size are assembled in memory, verified and cached. */
export const SMALL_NAR_BYTES = 256 * 1024;
export const DEFAULT_NAR_MEMORY_CACHE_BYTES = 64 * 1024 * 1024;
/** Memory for NAR listings kept between requests (a listing is ~100 bytes per file). */
const LISTING_CACHE_BYTES = 16 * 1024 * 1024;
/**
 * Idle NAR buffers kept between responses (16 MiB at the default chunk
 * size). Buffers in flight are bounded per response (`narMaxInFlight` + 1),
 * so many slow clients hold theirs, not a growing pool.
 */
const NAR_POOL_IDLE_BUFFERS = 16;

export interface LocalStore extends PathResolver {
  readonly db: StoreDb;
  /** True when a signing key is configured (every valid path is then serveable). */
  readonly canSign: boolean;
  /** The `nar/...` URL (relative to the server root) of a path's NAR. */
  narUrl(hashPart: string, narHash: string): string;
  /**
   * The build log of a derivation (`<hash>-<name>.drv`), when one of its
   * outputs is served here; undefined otherwise.
   */
  buildLog(drvBaseName: string): Promise<Buffer | undefined>;
  close(): void;
}

/** `nar/<hash part>-<nix32 NAR hash>.nar`: names the path and exactly one content. */
export function narUrlOf(hashPart: string, narHash: string): string {
  return `nar/${hashPart}-${narHash}.nar`;
}

/**
 * A path the daemon may serve: its NAR size is known, and it is signed,
 * content-addressed, or signable with a configured key (`canSign`).
 */
export function isServeable(info: PathInfo, canSign: boolean, storeDir: string): boolean {
  return (
    info.narSize > 0 && (info.sigs.length > 0 || canSign || isContentAddressed(info, storeDir))
  );
}

/**
 * Narinfos (and misses, as `null`) by hash part, dropped as a whole when
 * the database's data version changed. A request only reads a flag: after
 * each check an unref'd timer marks the next check due `revalidateMs`
 * later, so an answer is at most that stale and an idle daemon is never
 * woken.
 */
class NarInfoCache {
  private readonly entries = new Map<string, ServedNarInfo | null>();
  private version: number;
  private due = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: StoreDb,
    private readonly revalidateMs: number,
    private readonly maxEntries: number,
  ) {
    this.version = db.dataVersion();
    this.arm();
  }

  /** The cached answer (`null`: not serveable), or undefined when unknown. */
  get(hashPart: string): ServedNarInfo | null | undefined {
    if (this.due) this.revalidate();
    return this.entries.get(hashPart);
  }

  set(hashPart: string, entry: ServedNarInfo | null): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(hashPart, entry);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.entries.clear();
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = true;
    }, this.revalidateMs);
    this.timer.unref();
  }

  private revalidate(): void {
    this.due = false;
    const current = this.db.dataVersion();
    if (current !== this.version) {
      this.version = current;
      this.entries.clear();
    }
    this.arm();
  }
}

/**
 * NAR lookups by hash part (`null`: not serveable), valid for one database
 * data version: dropped as a whole as soon as it differs, which is asked on
 * every `get`, so an answer is never staler than the database.
 */
class NarLookupCache {
  private readonly entries = new Map<string, LocalNar | null>();
  private version: number;

  constructor(
    private readonly db: StoreDb,
    private readonly maxEntries: number,
  ) {
    this.version = db.dataVersion();
  }

  get(hashPart: string): LocalNar | null | undefined {
    const current = this.db.dataVersion();
    if (current !== this.version) {
      this.version = current;
      this.entries.clear();
      return undefined;
    }
    return this.entries.get(hashPart);
  }

  /**
   * Keeps the NAR of a row just read (by a narinfo request) unless one is
   * kept already. No version check: the row is at least as new as the
   * version kept, and a `get` after a commit drops it with the rest.
   */
  prime(hashPart: string, entry: () => LocalNar): void {
    if (!this.entries.has(hashPart)) this.set(hashPart, entry());
  }

  set(hashPart: string, entry: LocalNar | null): void {
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(hashPart, entry);
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The narinfo served for a local path: Nix's `file://` narinfo, signed on the fly. */
function renderLocalNarInfo(
  info: PathInfo,
  hashPart: string,
  narHash: string,
  signer: PathSigner,
  storeDir: string,
): ServedNarInfo {
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
}

function changed(info: PathInfo, bytes: number): OgygiaError {
  return new OgygiaError(
    "ERR_OGYGIA_IRISD",
    `the NAR of ${info.storePath} came out at ${bytes} bytes, ` +
      `the store database says ${info.narSize}: the path changed on disk`,
  );
}

/** A small NAR, whole (one synchronous walk into one buffer), checked against the database's NAR hash. */
function assemble(info: PathInfo, file: string, storeRoot: string): Buffer {
  const nar = narOfSize(file, info.narSize);
  if (nar === undefined) {
    throw new OgygiaError(
      "ERR_OGYGIA_IRISD",
      `the NAR of ${info.storePath} is no longer the ${info.narSize} bytes ` +
        "the store database says: the path changed on disk",
    );
  }
  const digest = createHash("sha256").update(nar).digest();
  if (!digest.equals(info.narHash.digest)) {
    throw new OgygiaError(
      "ERR_OGYGIA_IRISD",
      `the NAR of ${info.storePath} does not match its NAR hash in the store database: the store is corrupt`,
      { hint: `Run 'nix store verify --store ${storeRoot} ${info.storePath}'.` },
    );
  }
  return nar;
}

/** What every local NAR response shares: the small-NAR memory and the writer's options. */
interface NarContext {
  readonly smallNars: ByteLru;
  readonly writeOptions: { pool: BufferPool; maxInFlight?: number; maxBufferedBytes?: number };
  readonly storeRoot: string;
}

/** A local NAR: a `ServedNar` that also names its file. */
interface LocalNar extends ServedNar {
  readonly file: string;
}

/** A large NAR (or a range of it) streamed from the file tree, checked against its size. */
async function streamNar(
  info: PathInfo,
  file: string,
  out: Writable,
  range: ByteRange | undefined,
  context: NarContext,
): Promise<void> {
  const expected = range === undefined ? info.narSize : range.length;
  const result = await writeNar(file, out, { ...context.writeOptions, ...range });
  const wholeChanged = range === undefined && result.narSize !== info.narSize;
  if (result.bytes !== expected || wholeChanged) {
    throw changed(info, result.narSize ?? result.bytes);
  }
  out.end();
}

/** A local NAR ready to stream: small ones whole from memory, others from the file tree. */
function localNar(info: PathInfo, narHash: string, file: string, context: NarContext): LocalNar {
  return {
    file,
    storePath: info.storePath,
    narSize: info.narSize,
    narHash,
    source: "local",
    send(out: Writable, range: ByteRange | undefined): Promise<void> | undefined {
      if (info.narSize <= SMALL_NAR_BYTES) {
        const key = `${info.storePath}:${narHash}`;
        let nar = context.smallNars.get(key);
        if (nar === undefined) {
          nar = assemble(info, file, context.storeRoot);
          context.smallNars.set(key, nar);
        }
        // One write: the headers and the body leave together.
        out.end(range === undefined ? nar : nar.subarray(range.start, range.start + range.length));
        return undefined;
      }
      return streamNar(info, file, out, range, context);
    },
  };
}

/** Opens the store database; throws ERR_OGYGIA_NIX_DB (with a hint) when it is missing. */
export function openLocalStore(options: LocalStoreOptions): LocalStore {
  const db = openStoreDb({ root: options.root });
  const { location } = db;
  const { storeDir } = location;
  const signer = createPathSigner(options.signingKeys ?? [], { storeDir });
  const narInfos = new NarInfoCache(
    db,
    options.revalidateMs ?? 250,
    options.maxCachedNarInfos ?? 16_384,
  );
  const narLookups = new NarLookupCache(db, options.maxCachedNarInfos ?? 16_384);
  const context: NarContext = {
    smallNars: createByteLru(options.narMemoryCacheBytes ?? DEFAULT_NAR_MEMORY_CACHE_BYTES),
    writeOptions: {
      // One pool for every response: buffers go back as their writes complete.
      pool: createBufferPool({
        bufferSize: options.narChunkSize ?? DEFAULT_NAR_CHUNK_SIZE,
        maxFree: NAR_POOL_IDLE_BUFFERS,
      }),
      maxInFlight: options.narMaxInFlight,
      // A client that does not read holds one chunk, not maxInFlight of them.
      maxBufferedBytes: options.narChunkSize ?? DEFAULT_NAR_CHUNK_SIZE,
    },
    storeRoot: location.root,
  };
  const serveable = (info: PathInfo): boolean => isServeable(info, signer.canSign, storeDir);
  const localNarOf = (info: PathInfo, narHash: string): LocalNar =>
    localNar(info, narHash, physicalPath(location, info.storePath), context);
  const listings = createByteLru(LISTING_CACHE_BYTES);
  const logDir = options.logDir ?? path.join(location.root, "nix/var/log/nix/drvs");

  return {
    name: "local",
    local: true,
    db,
    canSign: signer.canSign,
    narUrl: narUrlOf,
    narInfo(hashPart) {
      const hit = narInfos.get(hashPart);
      if (hit !== undefined) return hit ?? undefined;
      const info = db.queryPathInfoByHashPart(hashPart);
      let entry: ServedNarInfo | null = null;
      if (info !== undefined && serveable(info)) {
        const narHash = formatHash(info.narHash, "nix32", false);
        entry = renderLocalNarInfo(info, hashPart, narHash, signer, storeDir);
        // The NAR request that usually follows reuses this row (no second query).
        narLookups.prime(hashPart, () => localNarOf(info, narHash));
      }
      narInfos.set(hashPart, entry);
      return entry ?? undefined;
    },
    nar(hashPart, narHash) {
      let served = narLookups.get(hashPart);
      if (served === undefined) {
        const info = db.queryPathInfoByHashPart(hashPart);
        served =
          info !== undefined && serveable(info)
            ? localNarOf(info, formatHash(info.narHash, "nix32", false))
            : null;
        narLookups.set(hashPart, served);
      }
      if (served?.narHash !== narHash) return undefined;
      try {
        lstatSync(served.file);
      } catch (err) {
        // Registered but gone from disk (deleted behind Nix's back): not here.
        if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
        throw err;
      }
      return served;
    },
    listing(hashPart) {
      const info = db.queryPathInfoByHashPart(hashPart);
      if (info === undefined || !serveable(info)) return undefined;
      const key = `${info.storePath}:${formatHash(info.narHash, "nix32", false)}`;
      const cached = listings.get(key);
      if (cached !== undefined) return cached;
      let listed;
      try {
        // Metadata only: lstat and readdir, the NAR offsets follow from the sizes.
        listed = narListingOfPath(physicalPath(location, info.storePath));
      } catch (err) {
        if (err instanceof OgygiaError && hasErrorCode(err.cause, "ENOENT", "ENOTDIR")) {
          return undefined;
        }
        if (hasErrorCode(err, "ENOENT", "ENOTDIR")) return undefined;
        throw err;
      }
      if (listed.narSize !== info.narSize) throw changed(info, listed.narSize);
      const body = renderNarListing(listed.root);
      listings.set(key, body);
      return body;
    },
    async buildLog(drvBaseName) {
      const outputs = db.queryOutputsOfDeriver(`${storeDir}/${drvBaseName}`);
      if (!outputs.some(serveable)) return undefined;
      return readBuildLog(logDir, drvBaseName);
    },
    close() {
      narInfos.clear();
      narLookups.clear();
      context.smallNars.clear();
      listings.clear();
      db.close();
    },
  };
}

interface ByteLru {
  get(key: string): Buffer | undefined;
  set(key: string, value: Buffer): void;
  clear(): void;
}

/** Buffers by key, least recently used dropped first, at most `budget` bytes in all. */
export function createByteLru(budget: number): ByteLru {
  const entries = new Map<string, Buffer>();
  let total = 0;
  return {
    get(key) {
      const value = entries.get(key);
      if (value !== undefined) {
        // Most recently used last: Map keeps insertion order.
        entries.delete(key);
        entries.set(key, value);
      }
      return value;
    },
    set(key, value) {
      if (value.length > budget) return;
      const old = entries.get(key);
      if (old !== undefined) {
        total -= old.length;
        entries.delete(key);
      }
      entries.set(key, value);
      total += value.length;
      for (const [oldest, buffer] of entries) {
        if (total <= budget) break;
        entries.delete(oldest);
        total -= buffer.length;
      }
    },
    clear() {
      entries.clear();
      total = 0;
    },
  };
}
