/**
 * The committed etcd code (src/fleet/etcd-client/*_pb.ts) is what
 * `npm run gen:etcd` makes from proto/etcd today.
 */

import { execFileSync } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, expect, it } from "vitest";

import { removeDir, tempDir } from "./helpers/process.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const GENERATED = "src/fleet/etcd-client";
let out: string | undefined;

afterAll(async () => {
  if (out) await removeDir(out);
});

it("matches a fresh generation from proto/etcd", async () => {
  out = await tempDir("gen-etcd");
  execFileSync(path.join(repo, "node_modules/.bin/buf"), ["generate", "--output", out], {
    cwd: repo,
    env: { ...process.env, PATH: `${path.join(repo, "node_modules/.bin")}:${process.env.PATH}` },
    stdio: "pipe",
  });
  const fresh = (await readdir(path.join(out, GENERATED))).sort();
  const committed = (await readdir(path.join(repo, GENERATED)))
    .filter((name) => name.endsWith("_pb.ts"))
    .sort();
  expect(fresh).toEqual(committed);
  for (const name of fresh) {
    expect(await readFile(path.join(repo, GENERATED, name), "utf8"), name).toBe(
      await readFile(path.join(out, GENERATED, name), "utf8"),
    );
  }
});
