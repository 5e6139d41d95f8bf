import { describe, expect, it } from "vitest";

import { parseIrisdConfig } from "./config.js";
import { narMemoryCacheShare } from "./configured-store.js";

describe("narMemoryCacheShare", () => {
  it("gives one process the whole bound", async () => {
    const config = await parseIrisdConfig(
      "[store]\nnar_memory_cache_bytes = 3000000\n",
      "/etc/irisd.toml",
    );
    expect(narMemoryCacheShare(config)).toBe(3_000_000);
  });

  it("divides it between the primary and the workers, so the daemon's total stays within it", async () => {
    const config = await parseIrisdConfig(
      "[server]\nworkers = 2\n[store]\nnar_memory_cache_bytes = 3000001\n",
      "/etc/irisd.toml",
    );
    expect(narMemoryCacheShare(config)).toBe(1_000_000);
    expect(narMemoryCacheShare(config) * 3).toBeLessThanOrEqual(3_000_001);
  });

  it("keeps 0 (the cache off) at 0", async () => {
    const config = await parseIrisdConfig(
      "[server]\nworkers = 4\n[store]\nnar_memory_cache_bytes = 0\n",
      "/etc/irisd.toml",
    );
    expect(narMemoryCacheShare(config)).toBe(0);
  });
});
