/**
 * The Nix store layer: store paths, hashes, NAR archives, narinfo files,
 * signatures and the store database, byte-exact with Nix 2.8. This file is
 * the only import surface of `src/nix/`.
 */

export { NIX32_ALPHABET, decodeNix32, encodeNix32, isNix32, nix32Length } from "./nix32.js";
export {
  compressHash,
  convertHash,
  formatHash,
  hashBytes,
  hashEquals,
  hashFromDigest,
  hashSize,
  parseHash,
  type Hash,
  type HashAlgorithm,
  type HashFormat,
} from "./hash.js";
export {
  DEFAULT_STORE_DIR,
  HASH_PART_LENGTH,
  MAX_NAME_LENGTH,
  isHashPart,
  isStorePath,
  makeStorePath,
  parseStorePath,
  parseStorePathBaseName,
  physicalPath,
  realStoreDir,
  sortStorePaths,
  storeDbPath,
  storeLocation,
  storePathNameProblem,
  type StoreLocation,
  type StorePath,
} from "./store-path.js";
export {
  contentAddressedPath,
  formatContentAddress,
  isContentAddressed,
  parseContentAddress,
  type ContentAddress,
} from "./content-address.js";
export { createBufferPool, type BufferPool, type BufferPoolOptions } from "./buffer-pool.js";
export {
  DEFAULT_NAR_CHUNK_SIZE,
  hashPath,
  narOfSize,
  narSizeOf,
  narStream,
  writeNar,
  type NarDumpResult,
  type NarRange,
  type NarStreamOptions,
  type WriteNarOptions,
  type WriteNarResult,
} from "./nar-dump.js";
export {
  createNarParser,
  parseNar,
  type NarEvent,
  type NarParser,
  type NarParserOptions,
} from "./nar-parse.js";
export {
  narListingFromNar,
  narListingOfPath,
  narListingSink,
  renderNarListing,
  type NarListingNode,
} from "./nar-listing.js";
export { restoreNar, type RestoreNarOptions, type RestoreNarResult } from "./nar-restore.js";
export {
  NarVerifier,
  checkNarExpectations,
  createNarVerifier,
  verifyNar,
  type NarDigest,
  type NarVerifierOptions,
} from "./nar-verify.js";
export {
  narInfoFromPathInfo,
  narUrlFor,
  parseNarInfo,
  renderNarInfo,
  type NarInfo,
  type NarInfoParseOptions,
  type NarInfoSource,
} from "./narinfo.js";
export {
  checkPathSignatures,
  createTrustedKeys,
  formatPublicKey,
  generateSecretKey,
  parsePublicKey,
  parseSecretKey,
  pathFingerprint,
  readPublicKeyFile,
  readSecretKeyFile,
  signFingerprint,
  signPath,
  signatureKeyName,
  verifyFingerprint,
  type PublicKey,
  type SecretKey,
  type SignableInfo,
  type SignatureVerdict,
  type TrustedKeys,
} from "./signatures.js";
export { openStoreDb, type OpenStoreDbOptions, type PathInfo, type StoreDb } from "./store-db.js";
export { parseNixCacheInfo, renderNixCacheInfo, type NixCacheInfo } from "./cache-info.js";
export {
  compareVersions,
  packageOfName,
  parseDrvName,
  type DrvName,
  type PackageName,
} from "./drv-name.js";
export {
  openClosureDb,
  type ClosureDb,
  type ClosureRow,
  type StoreGraphRows,
} from "./closure-db.js";
