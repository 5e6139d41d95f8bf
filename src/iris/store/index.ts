/**
 * This host's Nix store as irisd serves it: the local-store resolver
 * (serveable paths, narinfos, NARs streamed from the filesystem) and
 * signing on the fly.
 */

export {
  createByteLru,
  isServeable,
  narUrlOf,
  openLocalStore,
  type LocalStore,
} from "./local-store.js";
export { loadSigningKeys } from "./signing.js";
