import { describe, expect, it } from "vitest";

import { parseNixCacheInfo, renderNixCacheInfo } from "./cache-info.js";

describe("nix-cache-info", () => {
  it("renders what Nix writes for a file:// cache, and the optional fields", () => {
    expect(renderNixCacheInfo()).toBe("StoreDir: /nix/store\n");
    expect(renderNixCacheInfo({ wantMassQuery: true, priority: 30 })).toBe(
      "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n",
    );
  });

  it("parses it back and rejects a missing StoreDir or a bad priority", () => {
    expect(parseNixCacheInfo("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n")).toEqual({
      storeDir: "/nix/store",
      wantMassQuery: true,
      priority: 40,
    });
    expect(() => parseNixCacheInfo("Priority: 1\n")).toThrow(/StoreDir missing/);
    expect(() => parseNixCacheInfo("StoreDir: /nix/store\nPriority: high\n")).toThrow(/line 2/);
  });
});
