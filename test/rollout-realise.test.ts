/**
 * The agent's realisation step against real Nix chroot stores: a system
 * path already valid in the host's store is taken as it is, read from the
 * store's database (no substituter asked); one that is not still goes
 * through the substituters (here none, so it fails naming that).
 */

import path from "node:path";

import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { realise } from "../src/rollout/index.js";
import { nixEnv } from "./helpers/nix.js";
import { removeDir, tempDir } from "./helpers/process.js";
import { buildSystems, makeHostRoot } from "./helpers/rollout.js";

describe("realising a system path", () => {
  let dir: string;
  let systems: Record<string, string>;
  let root: string;

  beforeAll(async () => {
    process.env.NIX_CONFIG = nixEnv().NIX_CONFIG;
    dir = await tempDir("rollout-realise");
    systems = await buildSystems(dir, {
      present: { revision: "a".repeat(40), config: "" },
      missing: { revision: "b".repeat(40), config: "" },
    });
    root = path.join(dir, "host");
    await makeHostRoot(root, systems.present ?? "");
  });

  afterAll(async () => {
    await removeDir(dir);
  });

  const options = () => ({ root, substituters: [], trustedPublicKeys: [], timeoutMs: 60_000 });

  it("takes a path valid in the host's store as it is, read from its database", async () => {
    // No Nix program to run: only the database can tell the path is valid.
    const saved = process.env.PATH;
    process.env.PATH = path.join(dir, "no-programs");
    try {
      await expect(realise(systems.present ?? "", options())).resolves.toBeUndefined();
    } finally {
      process.env.PATH = saved;
    }
  });

  it("still asks the substituters for a path the host's store lacks", async () => {
    await expect(realise(systems.missing ?? "", options())).rejects.toThrow(
      /cannot realise .*no substituters configured/,
    );
  });
});
