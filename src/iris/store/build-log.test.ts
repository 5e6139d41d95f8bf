import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { makeTempDir } from "../../../test/support/nix.js";
import { readBuildLog } from "./build-log.js";

const DRV = "0c1a8fsj5n1wnwvdpqvzc3fb2zgx1bbl-hello-2.12.drv";
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function logDir(): string {
  const { dir, cleanup } = makeTempDir("build-log");
  cleanups.push(cleanup);
  mkdirSync(path.join(dir, "0c"), { recursive: true });
  return dir;
}

describe("build logs", () => {
  it("reads a plain log from <dir>/<xx>/<rest>", async () => {
    const dir = logDir();
    writeFileSync(path.join(dir, "0c", DRV.slice(2)), "plain log\n");
    expect((await readBuildLog(dir, DRV))?.toString()).toBe("plain log\n");
  });

  it("decompresses a .bz2 log as Nix writes it (bzip2)", async () => {
    const dir = logDir();
    const text = Array.from({ length: 2000 }, (_, i) => `line ${i}: building\n`).join("");
    const compressed = execFileSync("bzip2", ["-c"], { input: text });
    writeFileSync(path.join(dir, "0c", `${DRV.slice(2)}.bz2`), compressed);
    expect((await readBuildLog(dir, DRV))?.toString()).toBe(text);
  });

  it("is undefined when there is no log, and refuses a corrupt .bz2", async () => {
    const dir = logDir();
    expect(await readBuildLog(dir, DRV)).toBeUndefined();
    writeFileSync(path.join(dir, "0c", `${DRV.slice(2)}.bz2`), "BZh9 not really");
    await expect(readBuildLog(dir, DRV)).rejects.toThrow(/not valid bzip2/);
  });
});
