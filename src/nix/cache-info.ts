/**
 * `nix-cache-info`, the first file a Nix client fetches from a binary cache.
 */

import { OgygiaError } from "../core/index.js";
import { DEFAULT_STORE_DIR } from "./store-path.js";

export interface NixCacheInfo {
  storeDir: string;
  /** Clients may query many paths at once (`WantMassQuery: 1`). */
  wantMassQuery?: boolean | undefined;
  /** Lower is preferred; cache.nixos.org uses 40. */
  priority?: number | undefined;
}

/** Renders `nix-cache-info` (`StoreDir`, then `WantMassQuery` and `Priority` when set). */
export function renderNixCacheInfo(info: Partial<NixCacheInfo> = {}): string {
  let text = `StoreDir: ${info.storeDir ?? DEFAULT_STORE_DIR}\n`;
  if (info.wantMassQuery !== undefined) text += `WantMassQuery: ${info.wantMassQuery ? 1 : 0}\n`;
  if (info.priority !== undefined) {
    if (!Number.isSafeInteger(info.priority)) {
      throw new OgygiaError("ERR_OGYGIA_NIX_NARINFO", `invalid cache priority ${info.priority}`);
    }
    text += `Priority: ${info.priority}\n`;
  }
  return text;
}

/** Parses `nix-cache-info`; unknown lines are ignored, as Nix does. */
export function parseNixCacheInfo(text: string, whence = "nix-cache-info"): NixCacheInfo {
  const info: NixCacheInfo = { storeDir: DEFAULT_STORE_DIR };
  let sawStoreDir = false;
  for (const [index, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon < 0) {
      throw new OgygiaError(
        "ERR_OGYGIA_NIX_NARINFO",
        `${whence} line ${index + 1}: expected 'Name: value'`,
      );
    }
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name === "StoreDir") {
      info.storeDir = value;
      sawStoreDir = true;
    } else if (name === "WantMassQuery") {
      info.wantMassQuery = value === "1";
    } else if (name === "Priority") {
      const n = Number(value);
      if (!/^-?[0-9]+$/.test(value) || !Number.isSafeInteger(n)) {
        throw new OgygiaError(
          "ERR_OGYGIA_NIX_NARINFO",
          `${whence} line ${index + 1}: invalid Priority '${value}'`,
        );
      }
      info.priority = n;
    }
  }
  if (!sawStoreDir) {
    throw new OgygiaError("ERR_OGYGIA_NIX_NARINFO", `${whence}: StoreDir missing`);
  }
  return info;
}
