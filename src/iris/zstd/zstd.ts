/**
 * zstd through `zstd-napi` (libzstd over Node-API): the only importer of
 * the package, loaded on first use so a daemon that does not compress
 * never loads the addon. Both directions are Transform streams working
 * chunk by chunk: a NAR is never held whole.
 */

import type { Transform } from "node:stream";

import { OgygiaError } from "../../core/index.js";

/** The level irisd compresses at: the fastest (see bench/zstd.bench.ts). */
export const ZSTD_LEVEL = 1;

interface ZstdModule {
  CompressStream: new (parameters: {
    compressionLevel: number;
    checksumFlag?: boolean;
  }) => Transform;
  DecompressStream: new (parameters?: { windowLogMax?: number }) => Transform;
}

let loading: Promise<ZstdModule> | undefined;

/** The addon, loaded once; throws ERR_OGYGIA_IRISD when it cannot be loaded. */
export function loadZstd(): Promise<ZstdModule> {
  loading ??= import("zstd-napi").then(
    (mod) => mod as unknown as ZstdModule,
    (err: unknown) => {
      loading = undefined;
      throw new OgygiaError("ERR_OGYGIA_IRISD", "cannot load zstd (the zstd-napi addon)", {
        cause: err,
        hint: 'Reinstall ogygia so its native addons are built, or set [server] compression = "none".',
      });
    },
  );
  return loading;
}

/** A stream compressing what is written to it into one zstd frame. */
export async function zstdCompressStream(level = ZSTD_LEVEL): Promise<Transform> {
  const zstd = await loadZstd();
  return new zstd.CompressStream({ compressionLevel: level, checksumFlag: true });
}

/**
 * A stream decompressing zstd frames. The window is bounded (2^27 bytes,
 * what `zstd` itself accepts without `--long`), so a peer cannot make it
 * allocate more.
 */
export async function zstdDecompressStream(): Promise<Transform> {
  const zstd = await loadZstd();
  return new zstd.DecompressStream({ windowLogMax: 27 });
}
