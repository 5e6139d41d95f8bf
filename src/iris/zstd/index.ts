/**
 * NAR compression for links that need it (`[server] compression = "zstd"`):
 * the zstd adapter, the compressed NARs on disk, and the narinfo and NAR
 * routes' zstd half. Between `p2p` and `http`: it serves what the resolver
 * chain serves, compressed; `p2p` decompresses peers' zstd NARs with it.
 */

export { openCompressedNars, type CompressedNars } from "./compressed-nars.js";
export { zstdCompression } from "./narinfo.js";
export { loadZstd, zstdCompressStream, zstdDecompressStream } from "./zstd.js";
