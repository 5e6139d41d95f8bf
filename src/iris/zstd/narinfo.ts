/**
 * What `[server] compression = "zstd"` changes in the binary-cache
 * protocol: a narinfo (GET) names the compressed file
 * (`URL: nar/<hash>-<nar hash>.nar.zst`, `Compression: zstd`, its
 * `FileHash` and `FileSize`), compressed on that first request and kept
 * (`compressed-nars.ts`); `nar/<hash>-<nar hash>.nar.zst` serves it. The
 * uncompressed `.nar` URL keeps working. Signatures cover the store path,
 * NAR hash, size and references, none of which change.
 */

import { formatHash, parseNarInfo, parseStorePath, renderNarInfo } from "../../nix/index.js";
import { errorFields, type Logger } from "../../log/index.js";
import type {
  LookupOptions,
  NarCompression,
  ResolverChain,
  ServedNar,
  ServedNarInfo,
} from "../http/index.js";
import type { CompressedNar, CompressedNars } from "./compressed-nars.js";

export interface ZstdCompressionOptions {
  chain: ResolverChain;
  store: CompressedNars;
  storeDir: string;
  log: Logger;
  /** How long a peer's narinfo waits for a compression (default `PEER_WAIT_MS`). */
  peerWaitMs?: number;
}

/**
 * Peers ask for a narinfo with a 1.5 s timeout (`PEER_REQUEST_TIMEOUT_MS`
 * in p2p): a compression not done by then leaves their narinfo
 * uncompressed (they read both) and goes on for the next asker.
 */
export const PEER_WAIT_MS = 500;

/** The zstd half of the store routes (see `NarCompression`). */
export function zstdCompression(options: ZstdCompressionOptions): NarCompression {
  const { chain, store, storeDir, log } = options;
  const peerWaitMs = options.peerWaitMs ?? PEER_WAIT_MS;
  // Rendered narinfos by the uncompressed one they came from (resolvers keep theirs).
  const rendered = new WeakMap<Buffer, { narHash: string; body: Buffer }>();

  /** The stored file of a NAR the chain serves, compressed first if need be. */
  const compressedOf = async (
    hashPart: string,
    narHash: string,
    lookup: LookupOptions,
  ): Promise<{ nar: ServedNar; file: CompressedNar | undefined } | undefined> => {
    // Asked every time: only what is served uncompressed is served compressed.
    const nar = await chain.nar(hashPart, narHash, lookup);
    if (nar === undefined) return undefined;
    return { nar, file: store.get(narHash) ?? (await store.compress(nar)) };
  };

  return {
    extension: ".zst",
    async narInfo(served, hashPart, lookup): Promise<ServedNarInfo> {
      const memo = rendered.get(served.body);
      if (memo !== undefined && store.get(memo.narHash) !== undefined) {
        return { ...served, body: memo.body };
      }
      const info = parseNarInfo(served.body.toString("utf8"), {
        storeDir,
        whence: `served for ${hashPart}`,
      });
      if (info.compression !== "none") return served;
      const narHash = formatHash(info.narHash, "nix32", false);
      const compressing = compressedOf(hashPart, narHash, lookup).then(
        (found) => found?.file,
        (err: unknown) => {
          // The NAR is served as it is; its own request will fail if it is broken.
          log.warn(
            { storePath: info.storePath, ...errorFields(err) },
            "cannot compress a NAR: its narinfo names it uncompressed",
          );
          return undefined;
        },
      );
      const file =
        lookup.localOnly === true ? await within(compressing, peerWaitMs) : await compressing;
      // Gone meanwhile, too large for the limit, or (for a peer) not ready: the NAR as it is.
      if (file === undefined) return served;
      const ownHashPart = parseStorePath(info.storePath, storeDir).hashPart;
      const body = Buffer.from(
        renderNarInfo(
          {
            ...info,
            url: `nar/${ownHashPart}-${narHash}.nar.zst`,
            compression: "zstd",
            fileHash: file.fileHash,
            fileSize: file.fileSize,
          },
          { storeDir },
        ),
        "utf8",
      );
      rendered.set(served.body, { narHash, body });
      return { ...served, body };
    },
    async nar(hashPart, narHash, lookup): Promise<ServedNar | undefined> {
      const found = await compressedOf(hashPart, narHash, lookup);
      const file = found?.file;
      if (found === undefined || file === undefined) return undefined;
      return {
        storePath: found.nar.storePath,
        narSize: file.fileSize,
        // The ETag: the compressed file's own hash names its bytes.
        narHash: formatHash(file.fileHash, "nix32", false),
        source: `zstd ${found.nar.source}`,
        send: (out, range) => store.send(file, out, range),
      };
    },
  };
}

/** `promise`'s value if it settles within `ms`, else undefined (it goes on). */
async function within<T>(promise: Promise<T | undefined>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      resolve(undefined);
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
